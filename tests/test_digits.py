"""Spoken digits (CTC): the corpus from the real TTS engines and asterisk recordings, the streaming
greedy decoder (chunk-invariant), the writers, and ``streamseq train`` / ``process`` end to end."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from functools import cache
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
from streamseq.tasks.digits.data import CLIP_S, SPEED, build_digits_corpus
from streamseq.tasks.digits.decoder import MERGE_GAP_S, DigitDecoder, decode
from streamseq.tasks.digits.speech import Spoken, _espeak, draw_params, resampled, say, say_human
from streamseq.tasks.digits.task import ALIGN_WEIGHT, align, edit_distance
from streamseq.tasks.vad.postprocess import SegmenterConfig
from streamseq.training.config import TrainConfig

WORD_DIGITS = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
               "seven": "7", "eight": "8", "nine": "9"}
HOURS = {"train_hours": 0.02, "valid_hours": 0.01, "speed_perturb": 0.5}  # 8 + 4 clips of 10 s
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
            "--valid-hours", "0.01", "--speed-perturb", "0.5", "--data-seed", str(SEED), "--epochs", "4",
            "--hidden-size", "16", "--num-layers", "1", "--batch-size", "4", "--warmup-steps", "2", "--threads", "1",
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
            assert "speed" not in meta or (split == "train" and SPEED[0] <= meta["speed"] <= SPEED[1])
    assert np.median(ratios) > 2  # the groups are where the speech is
    assert any("speed" in entry["meta"] for entry in manifest(corpus / "train"))  # 8 clips, each 50 %


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
def test_speed_perturbation_changes_the_training_clips_and_leaves_validation_as_it_was(corpus, tmp_path):
    plain = build_digits_corpus(tmp_path, **(HOURS | {"speed_perturb": 0.0}), seed=SEED, jobs=2, progress=False)
    assert plain.name != corpus.name and "speed" not in json.loads((plain / "config.json").read_text())
    assert all("speed" not in entry["meta"] for entry in manifest(plain / "train"))
    assert manifest(plain / "train") != manifest(corpus / "train")
    assert manifest(plain / "valid") == manifest(corpus / "valid")
    for entry in manifest(corpus / "valid"):
        assert (plain / "valid" / entry["file"]).read_bytes() == (corpus / "valid" / entry["file"]).read_bytes()
    with pytest.raises(ValueError, match="speed_perturb"):
        build_digits_corpus(tmp_path, **(HOURS | {"speed_perturb": 1.5}), seed=SEED, progress=False)


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


def test_resampling_a_speaker_scales_tempo_pitch_and_word_times_together():
    rate, n = 16000, 16000
    tone = (0.5 * np.sin(2 * np.pi * 200 * np.arange(n) / rate)).astype(np.float32)
    tone[: n // 4] = tone[-n // 4 :] = 0  # speech in the middle half
    spoken = Spoken(tone, speech_labels(tone), [(0.25, 0.5), (0.5, 0.75)], "engine")
    for factor in (0.87, 1.15):
        out = resampled(spoken, factor)
        assert abs(out.audio.size - n / factor) <= 1
        peak_hz = np.argmax(np.abs(np.fft.rfft(out.audio))) * rate / out.audio.size
        assert abs(peak_hz - 200 * factor) < 2
        np.testing.assert_allclose(out.spans, np.array(spoken.spans) / factor, atol=1e-9)
        speech = np.flatnonzero(out.labels) * HOP_S
        assert abs(speech[0] - 0.25 / factor) <= 0.02 and abs(speech[-1] + HOP_S - 0.75 / factor) <= 0.02
    assert resampled(spoken, 1.001) is spoken
    with pytest.raises(ValueError, match="speed factor"):
        resampled(spoken, 3.0)


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
    assert model.task == "digits" and model.labels == ["blank", *"0123456789", "speech"]
    assert model.config.n_outputs == 12 and model.config.activation == "log_softmax_sigmoid"
    assert model.task_config["min_silence_s"] == 0.6 and model.task_config["min_speech_s"] == 0.1
    task = get_task("digits")
    assert task.decoder(model).settings["segmenter"]["min_silence_s"] == 0.6
    assert task.decoder(model, {"min_silence_s": 0.3}).config.min_silence_frames == 30
    with pytest.raises(ValueError, match=r"unknown digits end-of-speech settings \['blank_threshold'\]"):
        task.decoder(model, {"blank_threshold": 0.5})
    values = model.activate(torch.randn(50, 12))  # log-probabilities of the tokens, then a speech probability
    assert torch.allclose(values[:, :-1].exp().sum(-1), torch.ones(50))
    assert ((values[:, -1] > 0) & (values[:, -1] < 1)).all()


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
def test_targets_mark_speech_and_each_digit_on_its_last_frame_and_batch_for_the_loss():
    task = get_task("digits")
    entry = {"file": "x.flac", "meta": {"digits": "907", "digit_times": [[0.1, 0.3], [0.5, 0.7], [2.0, 2.4]]}}
    targets = task.load_targets(Path("."), entry, 250)
    assert targets.shape == (250, 2)
    assert torch.nonzero(targets[:, 1]).flatten().tolist() == [29, 69, 239]
    assert targets[[29, 69, 239], 1].tolist() == [10, 1, 8]
    assert torch.nonzero(targets[:, 0]).flatten().tolist() == [*range(10, 30), *range(50, 70), *range(200, 240)]
    crop = task.crop_targets(targets, 50, 100)
    assert crop.shape == (100, 2) and torch.nonzero(crop[:, 1]).flatten().tolist() == [19]
    batch = task.collate_targets([targets[:40], crop[:30], targets[100:120]])
    assert batch["targets"].tolist() == [[10], [1], [0]] and batch["target_lengths"].tolist() == [1, 1, 0]
    assert batch["speech"].shape == (3, 40) and batch["speech"][1, :20].tolist() == [1] * 20
    assert batch["word_ends"][0, 29] == 10 and batch["word_ends"][1, 19] == 1
    assert batch["word_ends"].count_nonzero() == 2
    logits, lengths = torch.randn(3, 40, 12), torch.tensor([40, 30, 20])
    log_probs = logits[..., :-1].log_softmax(-1)
    ctc = sum(torch.nn.functional.ctc_loss(log_probs[b, :n, None], batch["targets"][b : b + 1],
                                           [n], [int(batch["target_lengths"][b])], reduction="sum")
              for b, n in enumerate(lengths.tolist()))
    bce = sum(torch.nn.functional.binary_cross_entropy_with_logits(
        logits[b, :n, -1], batch["speech"][b, :n].float(), reduction="sum") for b, n in enumerate(lengths.tolist()))
    guide = -(log_probs[0, 29, 10] + log_probs[1, 19, 1])
    assert torch.allclose(task.loss(logits, lengths, batch), (ctc + bce + ALIGN_WEIGHT * guide) / 90)
    with pytest.raises(ValueError, match="two digits end on frame 29"):
        overlapping = {"digits": "12", "digit_times": [[0.1, 0.3], [0.15, 0.3]]}
        task.load_targets(Path("."), {"file": "x.flac", "meta": overlapping}, 250)


@settings(max_examples=200, deadline=None)
@given(ref=st.text("0123456789", max_size=12), hyp=st.text("0123456789", max_size=12))
def test_align_is_a_minimum_edit_alignment(ref, hyp):
    """align() covers both strings in order at the Levenshtein cost (an independent recursion here)."""

    @cache
    def levenshtein(i: int, j: int) -> int:  # ref[:i] -> hyp[:j]
        if not i or not j:
            return i + j
        return min(levenshtein(i - 1, j) + 1, levenshtein(i, j - 1) + 1,
                   levenshtein(i - 1, j - 1) + (ref[i - 1] != hyp[j - 1]))

    pairs = align(ref, hyp)
    assert [i for i, _ in pairs if i is not None] == list(range(len(ref)))
    assert [j for _, j in pairs if j is not None] == list(range(len(hyp)))
    cost = sum(1 for i, j in pairs if i is None or j is None or ref[i] != hyp[j])
    assert cost == edit_distance(ref, hyp) == levenshtein(len(ref), len(hyp))


def test_metrics_count_digit_edits_against_the_reference():
    assert edit_distance("4155", "4155") == 0 and edit_distance("4155", "415") == 1
    assert edit_distance("4155", "41955") == 1 and edit_distance("", "12") == 2 and edit_distance("12", "21") == 2
    task = get_task("digits")
    outputs = [frames("--4-1--5-9--", speech="-SSS-S------"), frames("--7--", speech="-SS--")]
    targets = [np.array([[0, 0], [1, 5], [1, 0], [1, 2], [0, 0], [1, 6], [0, 0], [0, 0], [0, 0], [0, 0], [0, 0],
                         [0, 0]]), np.array([[0, 0], [1, 0], [1, 8], [0, 0], [0, 0]])]
    assert task.metrics(outputs, targets, [{}, {}]) == pytest.approx({
        "digit_accuracy": 0.75, "digit_error_rate": 0.25, "string_accuracy": 0.5, "speech_roc_auc": 1.0})


# --------------------------------------------------------------------------- decoder
def frames(best: str, p: float = 0.97, speech: str = "") -> np.ndarray:
    """Outputs ``(T, 12)``: token log-probabilities whose best per frame is ``best[t]`` ("-": blank) with
    probability ``p``, then the speech probability, 0.9 where ``speech[t]`` is "S" (default: where a digit is)."""
    values = np.full((len(best), 11), (1 - p) / 10)
    for t, c in enumerate(best):
        values[t, 0 if c == "-" else 1 + int(c)] = p
    active = [c == "S" for c in speech] if speech else [c != "-" for c in best]
    return np.column_stack([np.log(values), np.where(active, 0.9, 0.05)])


END = SegmenterConfig(min_silence_s=0.05, min_speech_s=0.01, pad_s=0.0)


def test_a_digit_is_emitted_at_the_start_of_its_spike_and_utterances_end_on_end_of_speech():
    events = decode(frames("--44-4-------17---", speech="-SSSSSS-----SSSS--"), END, merge_gap_s=0)
    assert [(e.kind, e.digit, e.frame, e.utterance) for e in events] == [
        ("digit", "4", 2, 0), ("digit", "4", 5, 0), ("end", "", 12, 0),
        ("digit", "1", 13, 1), ("digit", "7", 14, 1), ("end", "", 18, 1)]
    first, second = events[2].transcript, events[5].transcript
    assert first.text == "44" and (first.start, first.end) == pytest.approx((0.01, 0.07))  # the speech segment
    assert [x for d in first.digits for x in (d.start, d.end)] == pytest.approx([0.02, 0.04, 0.05, 0.06])
    assert second.text == "17" and (second.start, second.end) == pytest.approx((0.12, 0.16))
    assert events[3].score == pytest.approx(0.97)
    # speech without digits is no utterance; digits without speech end with the stream, at their last spike
    assert decode(frames("-" * 20, speech="--SSSSS-------------"), END) == []
    quiet = decode(frames("-3---", speech="-----"), END)
    assert [e.kind for e in quiet] == ["digit", "end"] and quiet[1].transcript.end == pytest.approx(0.02)


def test_a_spike_that_dips_to_blank_inside_a_word_is_one_digit_and_a_spoken_repeat_is_two():
    gap = round(MERGE_GAP_S / 0.01)  # frames of blank a spike may dip for
    best = "-555" + "-" * gap + "55-" + "-" * (gap + 1) + "5--"
    events = decode(frames(best, speech="S" * len(best)), END)  # one utterance
    assert [(e.digit, e.frame) for e in events if e.kind == "digit"] == [("5", 1), ("5", 8 + 2 * gap)]
    assert events[-1].transcript.text == "55"
    assert events[-1].transcript.digits[0].end == pytest.approx((6 + gap) * 0.01)  # the dip is inside the spike
    # another digit between two spikes of one digit makes them two; so does a long enough gap
    assert "".join(e.digit for e in decode(frames("-55-3-55--"), END) if e.kind == "digit") == "535"
    # a frame whose best digit has no majority votes blank
    weak = frames("-7--8--")
    weak[4, :11] = np.log(np.r_[0.2, [0.3 if d == 8 else 0.5 / 9 for d in range(10)]])
    assert "".join(e.digit for e in decode(weak, END) if e.kind == "digit") == "7"
    assert "".join(e.digit for e in decode(weak, END, min_score=0) if e.kind == "digit") == "78"


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), cuts=st.lists(st.integers(0, 300), max_size=40))
def test_the_decoder_gives_the_same_events_for_any_chunking(seed, cuts):
    rng = np.random.default_rng(seed)
    best = "".join(rng.choice(list("-" * 12 + "0123456789"), size=300))
    speech = "".join(rng.choice(list("SSSS-----"), size=300))
    values = frames(best, p=0.95, speech=speech) + np.column_stack([rng.normal(0, 0.05, (300, 11)), np.zeros(300)])
    whole = decode(values, END)
    decoder = DigitDecoder(END)
    edges = sorted({0, 300, *cuts})
    chunked = [e for a, b in zip(edges[:-1], edges[1:], strict=True) for e in decoder.push(values[a:b])]
    assert chunked + decoder.flush() == whole
    gap, reference, last = round(MERGE_GAP_S / 0.01), [], ("-", -10**6)  # CTC collapse over short blank dips
    for t, c in enumerate(best):
        if c != "-":
            if not (c == last[0] and t - last[1] <= gap + 1):
                reference.append(t)
            last = (c, t)
    assert [e.frame for e in whole if e.kind == "digit"] == reference
    assert "".join(e.transcript.text for e in whole if e.kind == "end") == "".join(best[t] for t in reference)
    ends = [e.frame for e in whole if e.kind == "end"]
    assert ends == sorted(ends) and all(e.transcript.start <= e.transcript.end for e in whole if e.kind == "end")
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
