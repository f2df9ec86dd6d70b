"""Spoken digits (CTC): the corpus from the real TTS engines and asterisk recordings, the streaming
greedy decoder (chunk-invariant), the writers, and ``streamseq train`` / ``process`` end to end."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from streamseq import load_model
from streamseq.cli.main import main
from streamseq.data.labels import HOP_S, speech_labels
from streamseq.data.tts import list_voices, synthesize
from streamseq.tasks import get_task
from streamseq.tasks.digits.data import CLIP_S, build_digits_corpus
from streamseq.tasks.digits.decoder import DecoderConfig, DigitDecoder, decode
from streamseq.tasks.digits.speech import _espeak, draw_params, say, say_human
from streamseq.tasks.digits.task import edit_distance
from streamseq.training.config import TrainConfig

WORD_DIGITS = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
               "seven": "7", "eight": "8", "nine": "9"}
HOURS = {"train_hours": 0.02, "valid_hours": 0.01}  # 8 + 4 clips of 10 s
SEED = 5


def manifest(split: Path) -> list[dict]:
    return [json.loads(line) for line in (split / "manifest.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return build_digits_corpus(tmp_path_factory.mktemp("cache"), **HOURS, seed=SEED, jobs=1, progress=False)


@pytest.fixture(scope="module")
def trained(corpus) -> Path:
    """``streamseq train --task digits`` on the tiny corpus (found in the cache), once for the module."""
    args = ["train", "--task", "digits", "--select-split", "valid", "--real-hours", "0", "--train-hours", "0.02",
            "--valid-hours", "0.01", "--data-seed", str(SEED), "--epochs", "4", "--hidden-size", "16",
            "--num-layers", "1", "--batch-size", "4", "--warmup-steps", "2", "--threads", "1",
            "--out", str(corpus.parent / "run"), "--cache", str(corpus.parent), "--quiet"]
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert main(args) == 0
    assert out.getvalue().startswith(f"corpus {corpus}: 8 train clips, 4 valid clips")
    return corpus.parent / "run"


# --------------------------------------------------------------------------- corpus
@pytest.mark.slow
def test_each_clip_says_its_digits_in_groups_where_the_audio_is_not_silent(corpus):
    ratios = []
    for split in ("train", "valid"):
        for entry in manifest(corpus / split):
            meta = entry["meta"]
            audio, rate = sf.read(corpus / split / entry["file"], dtype="float32")
            assert rate == 16000 and audio.size == CLIP_S * rate and entry["duration"] == CLIP_S
            assert 1 <= len(meta["digits"]) <= 12 and meta["digits"].isdigit()
            assert "".join(WORD_DIGITS[w] for w in meta["words"].split()) == meta["digits"]
            times = np.array(meta["digit_times"])
            assert times.shape == (len(meta["digits"]), 2) and np.all(times[:, 1] > times[:, 0])
            assert np.all(np.diff(times.ravel()) >= -0.011) and 0 <= times.min() and times.max() <= CLIP_S
            groups = meta["groups"]
            assert groups[0][0] == times[0, 0] and groups[-1][1] == times[-1, 1]
            inside = np.zeros(audio.size, bool)
            for start, end in groups:
                part = audio[round(start * rate) : round(end * rate)]
                assert np.sqrt(np.mean(part.astype(np.float64) ** 2)) > 1e-4  # not silent
                inside[round(start * rate) : round(end * rate)] = True
            ratios.append(np.mean(audio[inside] ** 2) / (np.mean(audio[~inside] ** 2) + 1e-12))
            assert meta["snr_band"] in ("clean", "20", "10", "5", "0") and meta["timing"] in ("engine", "recording")
    assert np.median(ratios) > 2  # the groups are where the speech is


@pytest.mark.slow
def test_the_corpus_is_the_same_for_a_seed_whatever_the_jobs(corpus, tmp_path):
    again = build_digits_corpus(tmp_path, **HOURS, seed=SEED, jobs=2, progress=False)
    assert again.name == corpus.name and (again / "COMPLETE").is_file()
    for split in ("train", "valid"):
        assert manifest(again / split) == manifest(corpus / split)
        for entry in manifest(corpus / split):
            assert (again / split / entry["file"]).read_bytes() == (corpus / split / entry["file"]).read_bytes()
    other = build_digits_corpus(tmp_path, **HOURS, seed=SEED + 1, jobs=1, progress=False)
    assert other != again and manifest(other / "train") != manifest(again / "train")
    assert build_digits_corpus(tmp_path, **HOURS, seed=SEED, jobs=1, progress=False) == again  # cached


@pytest.mark.slow
def test_validation_voices_are_people_training_never_heard(corpus):
    split = json.loads((corpus / "split.json").read_text())
    person = {f"{v.engine}:{v.name}": v.speaker_id for v in list_voices()}
    train, valid = ({person[v] for v in split[s]["voices"]} for s in ("train", "valid"))
    assert train and valid and not train & valid
    assert split["train"]["human"] and not split["valid"]["human"]
    assert not set(split["train"]["music"]) & set(split["valid"]["music"])
    for s in ("train", "valid"):
        for entry in manifest(corpus / s):
            voice = entry["meta"]["voice"]
            assert voice in split[s]["voices"] or (s == "train" and voice == "asterisk:digits")


@pytest.mark.slow
def test_the_engines_word_times_cover_the_words_they_said():
    voices = list_voices()
    rng = np.random.default_rng(0)
    words = ["seven", "oh", "three", "nine"]
    for voice in [voices[0], *(v for v in voices if v.engine != "espeak")]:
        spoken = say(voice, words, draw_params(voice, rng))
        spans = np.array(spoken.spans)
        assert spoken.timing == "engine" and spans.shape == (4, 2), voice
        assert np.all(spans[:, 1] > spans[:, 0]) and np.all(spans[1:, 0] >= spans[:-1, 1] - 1e-6), voice
        frames = np.flatnonzero(spoken.labels)
        covered = [any(a <= f * HOP_S < b for a, b in spans) for f in frames]
        assert np.mean(covered) > 0.9, voice  # the speech lies in the words' spans
    human = say_human(words, rng)
    labels = speech_labels(human.audio)
    assert human.timing == "recording"
    assert all(labels[round(a / HOP_S) : round(b / HOP_S)].any() for a, b in human.spans)


@pytest.mark.slow
def test_espeak_through_its_library_says_what_the_command_line_says():
    fixed = {"speed_wpm": 150, "pitch": 40, "amplitude": 70}
    voice, other = (dataclasses.replace(v, params=fixed) for v in list_voices(("espeak",))[:2])
    cli, rate = synthesize(voice, "four one five", np.random.default_rng(0))
    for _ in range(2):  # each utterance starts afresh, like the command
        audio, library_rate, spans = _espeak(voice, "four one five", fixed)
        assert library_rate == rate and 0 < audio.size <= cli.size and np.array_equal(audio, cli[: audio.size])
        assert spans is not None and len(spans) == 3
        say(other, ["two", "two"], {"speed_wpm": 200, "pitch": 80, "amplitude": 60})


# --------------------------------------------------------------------------- training and process, via the CLI
@pytest.mark.slow
def test_train_lowers_the_ctc_loss_and_the_checkpoint_reloads_as_a_digits_model(trained):
    history = torch.load(trained / "last.train-state.pt", weights_only=False)["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    model = load_model(trained / "best.pt")
    assert model.task == "digits" and model.labels == ["blank", *"0123456789"]
    assert model.config.n_outputs == 11 and model.config.activation == "log_softmax"
    assert model.task_config == {"blank_threshold": 0.9, "end_silence_s": 0.5}
    task = get_task("digits")
    assert task.decoder(model).settings == {"digits": {"blank_threshold": 0.9, "end_silence_s": 0.5,
                                                       "frame_shift_s": 0.01}}
    assert task.decoder(model, {"end_silence_s": 0.3}).config.end_frames == 30
    with pytest.raises(ValueError, match=r"unknown digits decoder settings \['onset'\]"):
        task.decoder(model, {"onset": 0.5})


@pytest.mark.slow
def test_process_writes_ctm_and_json_transcripts(trained, corpus, tmp_path, capsys):
    wav = tmp_path / "call 1.wav"
    audio, rate = sf.read(corpus / "valid" / manifest(corpus / "valid")[0]["file"], dtype="float32")
    sf.write(wav, audio, rate)
    model = str(trained / "best.pt")
    assert main(["process", str(wav), "--model", model, "--format", "ctm", "--quiet"]) == 0
    out, err = capsys.readouterr()
    for line in out.splitlines():
        uri, channel, start, duration, word, confidence = line.split()
        assert (uri, channel) == ("call_1", "1") and word in "0123456789" and len(word) == 1
        assert 0 <= float(start) < CLIP_S and float(duration) > 0 and 0 < float(confidence) <= 1
    assert "digit(s) in" in err
    assert main(["process", str(wav), "--model", model, "--out", str(tmp_path / "out"), "--quiet"]) == 0
    result = json.loads((tmp_path / "out" / "call 1.json").read_text())
    assert result["file"] == str(wav) and result["duration"] == CLIP_S
    for u in result["utterances"]:
        assert u["text"] == "".join(d["digit"] for d in u["digits"]) and u["start"] <= u["end"]
    assert sum(len(u["digits"]) for u in result["utterances"]) == len(out.splitlines())


def test_the_digits_task_needs_its_own_validation_split(tmp_path):
    with pytest.raises(ValueError, match="pass --select-split valid"):
        get_task("digits").build_data(TrainConfig(task="digits"), tmp_path, 1, False)


# --------------------------------------------------------------------------- targets and loss
def test_targets_are_cropped_by_the_middle_of_each_digit_and_batched_for_ctc():
    task = get_task("digits")
    entry = {"file": "x.flac", "meta": {"digits": "907", "digit_times": [[0.1, 0.3], [0.5, 0.7], [2.0, 2.4]]}}
    targets = task.load_targets(Path("."), entry, 250)
    assert targets.tolist() == [[10, 20], [1, 60], [8, 220]]
    assert task.crop_targets(targets, 50, 100).tolist() == [[1, 10]]
    batch = task.collate_targets([targets, task.crop_targets(targets, 50, 100), targets[:0]])
    assert batch["targets"].tolist() == [[10, 1, 8], [1, 0, 0], [0, 0, 0]]
    assert batch["target_lengths"].tolist() == [3, 1, 0]
    logits, lengths = torch.randn(3, 40, 11), torch.tensor([40, 30, 20])
    reference = sum(torch.nn.functional.ctc_loss(logits[b, :n].log_softmax(-1)[:, None], batch["targets"][b : b + 1],
                                                 [n], [int(batch["target_lengths"][b])], reduction="sum")
                    for b, n in enumerate(lengths.tolist()))
    assert torch.allclose(task.loss(logits, lengths, batch), reference / 90)


def test_metrics_count_digit_edits_against_the_reference():
    assert edit_distance("4155", "4155") == 0 and edit_distance("4155", "415") == 1
    assert edit_distance("4155", "41955") == 1 and edit_distance("", "12") == 2 and edit_distance("12", "21") == 2
    task = get_task("digits")
    outputs = [frames("--4-1--5-5--"), frames("--7--")]
    targets = [np.array([[5, 0], [2, 0], [6, 0]]), np.array([[8, 0]])]
    assert task.metrics(outputs, targets, [{}, {}]) == {"digit_accuracy": 0.75, "digit_error_rate": 0.25,
                                                         "string_accuracy": 0.5}


# --------------------------------------------------------------------------- decoder
def frames(best: str, p: float = 0.97) -> np.ndarray:
    """Log-probabilities ``(T, 11)`` whose best output per frame is ``best[t]`` ("-": blank) with probability ``p``."""
    values = np.full((len(best), 11), (1 - p) / 10)
    for t, c in enumerate(best):
        values[t, 0 if c == "-" else 1 + int(c)] = p
    return np.log(values)


def test_a_digit_is_emitted_at_the_start_of_its_spike_and_utterances_end_after_blanks():
    cfg = DecoderConfig(end_silence_s=0.05)
    events = decode(frames("--44-4" + "-" * 7 + "17" + "---"), cfg)
    assert [(e.kind, e.digit, e.frame, e.utterance) for e in events] == [
        ("digit", "4", 2, 0), ("digit", "4", 5, 0), ("end", "", 10, 0),
        ("digit", "1", 13, 1), ("digit", "7", 14, 1), ("end", "", 18, 1)]
    first, second = events[2].transcript, events[5].transcript
    assert first.text == "44" and (first.start, first.end) == pytest.approx((0.02, 0.06))
    assert [x for d in first.digits for x in (d.start, d.end)] == pytest.approx([0.02, 0.04, 0.05, 0.06])
    assert second.text == "17" and second.end == pytest.approx(0.15) and events[3].score == pytest.approx(0.97)
    unsure = frames("-3---")
    unsure[2:, 0] = np.log(0.8)  # blank is best but not above 0.9: the utterance stays open until flush
    assert [e.kind for e in decode(unsure, cfg)] == ["digit", "end"]


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), cuts=st.lists(st.integers(0, 300), max_size=40))
def test_the_decoder_gives_the_same_events_for_any_chunking(seed, cuts):
    rng = np.random.default_rng(seed)
    best = "".join(rng.choice(list("-" * 12 + "0123456789"), size=300))
    values = frames(best, p=0.95) + rng.normal(0, 0.05, (300, 11))
    whole = decode(values, DecoderConfig(end_silence_s=0.03))
    decoder = DigitDecoder(DecoderConfig(end_silence_s=0.03))
    edges = sorted({0, 300, *cuts})
    chunked = [e for a, b in zip(edges[:-1], edges[1:], strict=True) for e in decoder.push(values[a:b])]
    assert chunked + decoder.flush() == whole
    reference = [t for t in range(300) if best[t] != "-" and (t == 0 or best[t - 1] != best[t])]  # CTC collapse
    assert [e.frame for e in whole if e.kind == "digit"] == reference
    assert "".join(e.transcript.text for e in whole if e.kind == "end") == "".join(best[t] for t in reference)
    decoder.push(values[:1])  # flush started a new stream
    assert decoder.frame == 1 and decoder.utterance == 0


# --------------------------------------------------------------------------- writers
RESULT = {"file": "calls/a b.wav", "duration": 4.0, "sample_rate": 8000, "model": "digits-uni", "utterances": [
    {"start": 0.5, "end": 1.25, "text": "42", "digits": [{"digit": "4", "start": 0.5, "end": 0.53, "score": 0.9},
                                                         {"digit": "2", "start": 0.9, "end": 0.92, "score": 0.75}]},
    {"start": 3.0, "end": 3.5, "text": "0", "digits": [{"digit": "0", "start": 3.0, "end": 3.01, "score": 0.5}]}]}


def test_ctm_srt_and_csv_lines():
    writers = get_task("digits").writers
    assert writers.render(RESULT, "ctm") == ("a_b 1 0.500 0.030 4 0.9000\na_b 1 0.900 0.020 2 0.7500\n"
                                             "a_b 1 3.000 0.010 0 0.5000\n")
    assert writers.render(RESULT, "srt") == ("1\n00:00:00,500 --> 00:00:01,250\n42\n\n"
                                             "2\n00:00:03,000 --> 00:00:03,500\n0\n\n")
    assert writers.render(RESULT, "csv").splitlines()[:2] == ["file,utterance,digit,start,end,score",
                                                              "calls/a b.wav,0,4,0.500,0.530,0.9000"]
    assert not writers.render(RESULT, "csv", first=False).startswith("file,")
    assert json.loads(writers.render(RESULT, "json", many=True)) == RESULT
    assert writers.render(RESULT, "table").endswith("3 digit(s) in 2 utterance(s)\n")
    with pytest.raises(ValueError, match="unknown format 'rttm'"):
        writers.render(RESULT, "rttm")
