"""Digits models in ``streamseq latency`` and ``streamseq mic``, with tiny digits models trained here by
``streamseq train --task digits`` (uni, uni with 50 ms output delay, bi) on a tiny corpus.

The models are weak (a few epochs on 8 clips) but real: they emit digits, so what is checked is
the timing and the order of events, against references that are not the code under test: the
offline forward pass through the task's decoder, the samples each frame needs, and the
evaluation's recogniser.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import make_model  # noqa: E402
from streamseq import load_model  # noqa: E402
from streamseq.apps.latency import stream_arrivals  # noqa: E402
from streamseq.apps.live import BiDecision, LivePipeline, UniSegment  # noqa: E402
from streamseq.apps.live_view import LiveView, PlainView  # noqa: E402
from streamseq.audio.source import FileSource  # noqa: E402
from streamseq.cli.main import main  # noqa: E402
from streamseq.features import compute_features  # noqa: E402
from streamseq.models import save_checkpoint  # noqa: E402
from streamseq.models.checkpoint import pretrained_path  # noqa: E402
from streamseq.tasks.digits.data import build_digits_corpus  # noqa: E402
from streamseq.tasks.digits.decoder import decode  # noqa: E402
from streamseq.tasks.digits.evaluate import evaluate_recognizers, load_split, model_recognizer  # noqa: E402
from streamseq.tasks.digits.latency import endpoints, measure  # noqa: E402
from streamseq.tasks.digits.live import DigitPartial, DigitTranscript  # noqa: E402
from streamseq.tasks.digits.task import DigitsTask  # noqa: E402
from virtual_capture import make_virtual_capture, needs_portaudio  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SEED = 5
CHUNK_S = 0.032
MODELS = {"uni": ["--kind", "uni"], "uni-d5": ["--kind", "uni", "--output-delay", "5"], "bi": ["--kind", "bi"]}


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> dict[str, Path]:
    """The tiny corpus's splits and three models trained on it (about a minute on 2 busy cores)."""
    cache = tmp_path_factory.mktemp("digits-cache")
    corpus = build_digits_corpus(cache, train_hours=0.02, valid_hours=0.01, seed=SEED, jobs=1, progress=False)
    out = {"train": corpus / "train", "valid": corpus / "valid"}
    for name, flags in MODELS.items():
        args = ["train", "--task", "digits", "--select-split", "valid", "--real-hours", "0", "--train-hours", "0.02",
                "--valid-hours", "0.01", "--data-seed", str(SEED), "--epochs", "12", "--hidden-size", "32",
                "--num-layers", "1", "--batch-size", "4", "--warmup-steps", "2", "--lr", "0.01", "--threads", "1",
                *flags, "--out", str(cache / name), "--cache", str(cache), "--quiet"]
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(args) == 0
        out[name] = cache / name / "last.pt"  # best.pt is picked on unseen voices, which these models never get right
    return out


def offline(model, audio: np.ndarray) -> np.ndarray:
    """Activated outputs ``(T, C)`` of the whole clip in one forward pass (no streaming code)."""
    with torch.inference_mode():
        return model.activate(model(compute_features(audio, 16000, model.feature_config)[None]))[0].numpy()


# --------------------------------------------------------------------------- latency measurement
@pytest.mark.slow
@pytest.mark.parametrize("name, delay", [("uni", 0), ("uni-d5", 5)])
def test_uni_digits_appear_once_their_frame_and_the_output_delay_arrived(digits, name, delay):
    model = load_model(digits[name])
    clips = load_split(digits["train"])
    stream = partial(stream_arrivals, chunk_ms=CHUNK_S * 1000, sample_rate=16000)
    emitted = 0
    for (audio, meta), m in zip(clips, measure(model, clips, stream), strict=True):
        reference = [e for e in decode(offline(model, audio)) if e.kind == "digit"]
        frames = [e.frame for e in reference]
        assert m.hypothesis == "".join(e.digit for e in reference)
        for f, t in zip(frames, m.emitted_s, strict=True):
            needed = (f + 1 + delay) * 0.01  # samples of frames up to f + delay: the frame is final
            assert needed - 1e-9 <= t < needed + CHUNK_S + 1e-9 or t == m.duration_s, (f, t)
        ref_ends = np.array(meta["digit_times"])[:, 1]
        assert m.delays_s == pytest.approx([m.emitted_s[j] - ref_ends[i] for i, j in m.matches])
        assert all(meta["digits"][i] == m.hypothesis[j] for i, j in m.matches)
        if m.final_s is not None:  # the final transcript closes after the string
            assert ref_ends[-1] <= m.final_s <= m.duration_s and (not m.no_endpoint or m.final_s == m.duration_s)
        emitted += len(frames)
    assert emitted > 0, "the tiny model emitted no digit: the test checks nothing"


@pytest.mark.slow
def test_bi_digits_appear_only_after_the_utterance_ended(digits):
    uni, bi = load_model(digits["uni"]), load_model(digits["bi"])
    clips = load_split(digits["train"])
    stream = partial(stream_arrivals, chunk_ms=CHUNK_S * 1000, sample_rate=16000)
    ends = endpoints(measure(uni, clips, stream), clips)
    assert any(e is not None for e in ends), "the uni model decided no end of speech"
    emitted = 0
    for with_endpointer in (True, False):
        for (audio, meta), end, m in zip(clips, ends, measure(bi, clips, stream, ends if with_endpointer else None),
                                         strict=True):
            last_end = meta["digit_times"][-1][1]
            wait = end if with_endpointer and end is not None else audio.size / 16000
            assert wait >= last_end
            assert np.all(m.emitted_s >= wait) and np.all(m.emitted_s >= last_end)  # the string ended first
            assert np.all(m.emitted_s == m.final_s) and (m.final_s is None or m.final_s >= wait)
            assert m.no_endpoint == (not with_endpointer or end is None)
            emitted += len(m.hypothesis)
    assert emitted > 0, "the tiny bi model emitted no digit: the test checks nothing"


@pytest.mark.slow
def test_cli_writes_the_digits_report(digits, tmp_path):
    out = tmp_path / "report"
    models = [str(digits[n]) for n in ("uni", "uni-d5", "bi")]
    cmd = [sys.executable, "-m", "streamseq.cli.main", "latency", "--models", *models, "--data", str(digits["train"]),
           "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(open(out / "latency.csv")))
    overall = [r for r in rows if r["snr_band"] == "all"]
    assert [r["model"] for r in overall] == ["uni +0 ms", "uni +50 ms", "bi (utterance)"]
    assert overall[1]["lookahead_ms"] == "50.0" and overall[2]["lookahead_ms"] == ""
    assert overall[2]["endpointer"] == "uni +0 ms" and overall[0]["endpointer"] == ""
    clips = load_split(digits["train"])
    for r in overall:
        assert int(r["clips"]) == len(clips) and int(r["digits"]) == sum(len(m["digits"]) for _, m in clips)
        assert 0 <= int(r["matched"]) <= int(r["digits"])
    # the uni rows' accuracy is the offline recogniser's: streaming changes when, not what
    offline_der = evaluate_recognizers(clips, {"uni": model_recognizer(load_model(digits["uni"]))})
    assert float(overall[0]["digit_error_rate"]) == pytest.approx(offline_der["uni"][("overall", "all")]
                                                                 ["digit_error_rate"])
    bands = {r["snr_band"] for r in rows} - {"all"}
    assert bands == {m["snr_band"] for _, m in clips}
    assert sum(int(r["clips"]) for r in rows if r["model"] == "bi (utterance)" and r["snr_band"] != "all") == len(clips)
    report = (out / "latency.md").read_text()
    assert "| uni +50 ms |" in report and "per-digit emission delay" in report and "Per SNR band" in report
    assert "| uni +50 ms |" in done.stdout
    for png in ("latency-accuracy.png", "timeline.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert again.returncode == 2 and "--force" in again.stderr


@pytest.mark.slow
def test_cli_refuses_models_of_two_tasks_and_the_vad_oracle(digits, tmp_path, capsys):
    vad = save_checkpoint(make_model("uni"), tmp_path / "vad.pt")
    assert main(["latency", "--models", str(digits["uni"]), str(vad), "--data", str(digits["valid"]),
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "one task" in err and "'digits'" in err and "'vad'" in err and "Traceback" not in err
    assert main(["latency", "--models", str(digits["uni"]), "--data", str(digits["valid"]), "--oracle",
                 "--out", str(tmp_path / "r")]) == 2
    assert "--oracle" in capsys.readouterr().err


# --------------------------------------------------------------------------- live
@pytest.fixture(scope="module")
def spoken(digits, tmp_path_factory) -> Path:
    """The training clip on which the uni model closes the most utterances with digits, as a WAV."""
    model, task = load_model(digits["uni"]), DigitsTask()
    best, most = None, 0
    for entry in (json.loads(line) for line in (digits["train"] / "manifest.jsonl").read_text().splitlines()):
        audio, _ = sf.read(digits["train"] / entry["file"], dtype="float32")
        values = offline(model, audio)
        events = decode(values, task.segmenter_config(model))
        closed = sum(1 for e in events if e.kind == "end" and e.frame < len(values))  # by silence, not the flush
        if closed > most:
            best, most = audio, closed
    assert best is not None, "the tiny uni model closes no utterance on any training clip"
    path = tmp_path_factory.mktemp("spoken") / "digits.wav"
    sf.write(path, best, 16000)
    return path


def check_events(events) -> None:
    """Uni partials grow digit by digit before their utterance's segment closes; its uni transcript
    follows that segment, and the bi transcript follows the bi decision, never before the segment."""
    closed = {e.utterance: i for i, e in enumerate(events) if isinstance(e, UniSegment)}
    partials: dict[int, list[DigitPartial]] = {}
    for i, e in enumerate(events):
        if isinstance(e, DigitPartial):
            assert i < closed.get(e.utterance, len(events))
            before = partials.setdefault(e.utterance, [])
            assert e.text == (before[-1].text if before else "") + e.digit
            assert e.decided_s >= e.time_s
            before.append(e)
        elif isinstance(e, DigitTranscript) and e.utterance:
            seg = events[closed[e.utterance]]
            assert i > closed[e.utterance] and e.end_s == seg.end_s
            if e.model == "uni":
                assert e.text == (partials[e.utterance][-1].text if e.utterance in partials else "")
                assert e.decided_s == seg.end_decided_s and e.wait_s == pytest.approx(seg.end_latency_s)
            else:
                decision = next(j for j, d in enumerate(events) if isinstance(d, BiDecision) and
                                d.utterance == e.utterance)
                assert closed[e.utterance] < decision < i
                assert e.decided_s >= seg.end_decided_s >= seg.end_s and e.wait_s == pytest.approx(
                    e.decided_s - seg.end_s)
    assert partials, "no digit was emitted"


@pytest.mark.slow
def test_pipeline_shows_uni_digits_as_they_come_and_bi_transcripts_after_the_end(digits, spoken):
    uni, bi = load_model(digits["uni"]), load_model(digits["bi"])
    pipeline = LivePipeline(uni, bi)
    events: list = []
    with FileSource(spoken, block_s=0.03, realtime=False) as source:
        summary = pipeline.run(source, on_event=events.append)
    check_events(events)
    audio, _ = sf.read(spoken, dtype="float32")
    reference = [e for e in decode(offline(uni, audio)) if e.kind == "digit"]
    emitted = [e for e in events if isinstance(e, DigitPartial)]
    assert [e.digit for e in emitted] == [e.digit for e in reference]  # the offline digits, each once
    np.testing.assert_allclose([e.time_s for e in emitted], [e.time for e in reference], atol=1e-9)
    uni_text = [e for e in events if isinstance(e, DigitTranscript) and e.model == "uni"]
    assert "".join(e.text for e in uni_text) == "".join(e.digit for e in reference)  # every digit lands in one
    assert sum(isinstance(e, DigitTranscript) and e.model == "bi" for e in events) == summary.segments

    out, view = io.StringIO(), LiveView("digits", transcripts=True)
    plain = PlainView(out)
    for e in events:
        view.update(e)
        plain.update(e)
    lines = out.getvalue().splitlines()
    assert sum(" … " in line for line in lines) == len(emitted)
    assert sum("uni #" in line and " transcript " in line for line in lines) == len(uni_text)
    screen = view.export_text(width=140)
    assert "uni transcript" in screen and "bi transcript" in screen, screen
    assert any(e.text in screen for e in uni_text if e.text), screen

    # One block for the whole clip: the same digits, utterances and transcripts (only the bi decisions
    # wait for the end of the block that carried the uni end of speech).
    once = LivePipeline(uni, bi)
    whole = once.accept(audio, 16000) + once.finish()
    check_events(whole)
    same = lambda evs: [(type(e).__name__, e.utterance, getattr(e, "text", None), getattr(e, "model", None),  # noqa: E731
                         round(e.decided_s, 6) if isinstance(e, DigitPartial) else None)
                        for e in evs if isinstance(e, (DigitPartial, DigitTranscript, UniSegment, BiDecision))]
    assert same(whole) == same(events)

    with pytest.raises(ValueError, match="pass two models of one task"):
        LivePipeline(uni, make_model("bi"))


@pytest.mark.slow
@needs_portaudio
def test_mic_through_portaudio_prints_digits_then_the_transcripts(digits, spoken, tmp_path):
    vc = make_virtual_capture(spoken, tmp_path / "alsa", pad_s=3.0)
    duration = vc.frames / vc.sample_rate
    out = tmp_path / "session.json"
    proc = subprocess.run(
        [sys.executable, "-m", "streamseq.cli.main", "mic", "--device", vc.device, "--plain", "--json", str(out),
         "--duration", str(duration), "--queue-blocks", str(int(duration / 0.05) + 20),
         "--model-uni", str(digits["uni"]), "--model-bi", str(digits["bi"])],
        env=dict(vc.env, PYTHONPATH=str(REPO)), cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    audio, _ = sf.read(spoken, dtype="float32")
    reference = [e for e in decode(offline(load_model(digits["uni"]), audio)) if e.kind == "digit"]
    assert [d["digit"] for d in result["digits"]] == [e.digit for e in reference]  # the same digits, live
    np.testing.assert_allclose([d["time_s"] for d in result["digits"]], [e.time for e in reference], atol=1e-6)
    lines = proc.stdout.splitlines()
    at = lambda prefix: [i for i, line in enumerate(lines) if line.split("] ", 1)[-1].startswith(prefix)]  # noqa: E731
    assert len(at("uni #")) > len(result["uni"]) * 3  # digits, segments and transcripts were printed
    for u in result["uni"]:
        n = u["utterance"]
        segment, uni, bi = at(f"uni #{n} segment"), at(f"uni #{n} transcript"), at(f"bi  #{n} transcript")
        assert len(segment) == len(uni) == len(bi) == 1, lines
        assert all(i < segment[0] for i in at(f"uni #{n} … "))  # digits appear before the end of speech
        assert segment[0] < uni[0] < bi[0], lines  # the bi transcript only after the uni end of speech
    transcripts = result["transcripts"]
    for t in transcripts:
        seg = next(u for u in result["uni"] if u["utterance"] == t["utterance"]) if t["utterance"] else None
        if t["model"] == "bi":
            assert seg is not None and t["decided_s"] >= seg["end_decided_s"] >= seg["end_s"]
            assert t["wait_s"] == pytest.approx(t["decided_s"] - seg["end_s"], abs=1e-3)
        elif seg is not None:
            assert t["decided_s"] == pytest.approx(seg["end_decided_s"])
    assert {t["utterance"] for t in transcripts if t["model"] == "bi"} == {u["utterance"] for u in result["uni"]}


@pytest.mark.slow
def test_mic_picks_the_bi_model_of_the_uni_models_task(digits, spoken, tmp_path, capsys):
    out = tmp_path / "session.json"
    code = main(["mic", "--input", str(spoken), "--fast", "--plain", "--model-uni", str(digits["uni"]),
                 "--json", str(out)])
    if pretrained_path("digits-bi").is_file():  # shipped: it runs beside the uni model
        assert code == 0 and json.loads(out.read_text())["models"]["bi"] == "digits-bi"
    else:  # not vad-bi: that is the VAD task's
        assert code == 2 and "digits-bi" in capsys.readouterr().err
