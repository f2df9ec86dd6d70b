"""Latency measurement: exact delays with a known-delay stand-in, stand-in timing equals the real
streaming path, the bi model answers only at end of input, and the CLI writes its report."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import make_model, noisy_tone
from streamseq import BufferedProcessor, Session
from streamseq.apps.latency import ReferenceProcessor, measure, measure_clip, stream_arrivals
from streamseq.cli.main import main as cli_main
from streamseq.models import save_checkpoint
from streamseq.tasks.vad.postprocess import SegmenterConfig

ROOT = Path(__file__).resolve().parents[1]
CFG = SegmenterConfig()  # min speech 25 frames, min silence 30 frames
SEGMENTS = [(50, 150), (200, 260), (330, 420)]  # reference speech, frames [start, end)
T = 500


def synthetic(n_frames: int = T, segments=SEGMENTS) -> tuple[np.ndarray, np.ndarray]:
    """Labels with known boundaries and a matching signal (tone in speech, faint noise outside)."""
    labels = np.zeros(n_frames, np.int8)
    for a, b in segments:
        labels[a:b] = 1
    rng = np.random.default_rng(0)
    t = np.arange(n_frames * 160) / 16000
    audio = 0.01 * rng.standard_normal(t.size) + 0.3 * np.sin(2 * np.pi * 300 * t) * np.repeat(labels, 160)
    return audio.astype(np.float32), labels


@pytest.mark.parametrize("shift, delay", [(0, 0), (4, 0), (0, 10), (3, 20)])
def test_stand_in_delays_are_the_known_values(shift, delay):
    audio, labels = synthetic()
    arrivals = stream_arrivals(ReferenceProcessor(labels, shift, delay), audio, chunk_ms=10, sample_rate=16000)
    m = measure_clip(arrivals, labels, CFG)
    late = shift + delay
    assert [(s.start_frame, s.end_frame) for s in m.reference] == SEGMENTS
    assert m.n_missed == 0 and m.n_inserted == 0
    np.testing.assert_allclose(m.onset_delays_s, [(CFG.min_speech_frames + late) * 0.01] * 3, atol=1e-9)
    np.testing.assert_allclose(m.offset_delays_s, [(CFG.min_silence_frames + late) * 0.01] * 3, atol=1e-9)
    assert m.final_delay_s == pytest.approx((CFG.min_silence_frames + late) * 0.01, abs=1e-9)
    # only the values' shift moves the segments (which start pad_s before the detected onset)
    assert m.onset_errors_s == pytest.approx([abs(shift * 0.01 - CFG.pad_s)] * 3)


def test_chunking_adds_at_most_one_chunk_of_waiting():
    audio, labels = synthetic()
    exact, chunked = (
        measure_clip(stream_arrivals(ReferenceProcessor(labels, 2, 5), audio, chunk_ms=ms, sample_rate=16000),
                     labels, CFG)
        for ms in (10, 32)
    )
    for a, b in ((exact.onset_delays_s, chunked.onset_delays_s), (exact.offset_delays_s, chunked.offset_delays_s)):
        wait = np.subtract(b, a)
        assert np.all(wait >= -1e-9) and np.all(wait < 0.032)


def test_stand_in_arrivals_equal_the_real_streaming_path():
    audio = noisy_tone(1.3)[: 20800 - 77]  # a partial last frame
    labels = np.zeros(-(-audio.size // 160), np.int8)
    for delay in (0, 7):
        real = stream_arrivals(Session(make_model("uni", delay=delay)), audio, chunk_ms=32, sample_rate=16000)
        stand_in = stream_arrivals(ReferenceProcessor(labels, delay=delay), audio, chunk_ms=32, sample_rate=16000)
        assert [(a.time_s, len(a.outputs)) for a in real] == [(a.time_s, len(a.outputs)) for a in stand_in]
    real = stream_arrivals(BufferedProcessor(make_model("bi")), audio, chunk_ms=32, sample_rate=16000)
    stand_in = stream_arrivals(ReferenceProcessor(labels, buffered=True), audio, chunk_ms=32, sample_rate=16000)
    assert [(a.time_s, len(a.outputs)) for a in real] == [(a.time_s, len(a.outputs)) for a in stand_in]


def test_bidirectional_model_emits_nothing_before_end_of_input():
    audio, labels = synthetic(300, [(50, 150), (200, 260)])
    processor = BufferedProcessor(make_model("bi"))
    for start in range(0, audio.size, 512):
        assert len(processor.accept(audio[start : start + 512], sample_rate=16000)) == 0
    assert len(processor.finish()) == labels.size
    arrivals = stream_arrivals(BufferedProcessor(make_model("bi")), audio, chunk_ms=32, sample_rate=16000)
    assert all(len(a.outputs) == 0 for a in arrivals[:-1]) and arrivals[-1].final
    m = measure_clip(arrivals, labels, CFG)
    assert np.all(m.arrival_s == 3.0)
    assert all(e.decision_s == 3.0 for e in m.events)


def test_measure_rejects_outputs_that_do_not_match_the_labels():
    audio, labels = synthetic(300, [(50, 150)])
    with pytest.raises(ValueError, match="one output per label frame"):
        measure(make_model("uni"), [(audio, labels[:-5], {})])


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("latency")
    data = root / "valid"
    data.mkdir()
    with open(data / "manifest.jsonl", "w") as f:
        for i, segments in enumerate([[(40, 120), (170, 240)], [(60, 200)]]):
            audio, labels = synthetic(280, segments)
            sf.write(data / f"{i}.flac", audio, 16000)
            np.save(data / f"{i}.labels.npy", labels)
            f.write(json.dumps({"file": f"{i}.flac", "labels": f"{i}.labels.npy", "meta": {}}) + "\n")
    paths = [str(save_checkpoint(make_model(kind, delay=d), root / f"{kind}{d}.pt")) for kind, d in
             [("uni", 0), ("uni", 5), ("bi", 0)]]
    return data, paths


@pytest.mark.slow
def test_cli_writes_table_and_plots(tiny_set, tmp_path):
    data, models = tiny_set
    out = tmp_path / "report"
    cmd = [sys.executable, "-m", "streamseq.cli.main", "latency", "--models", *models, "--data", str(data),
           "--out", str(out), "--oracle"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(open(out / "latency.csv")))
    assert [r["model"] for r in rows] == ["uni +0 ms", "uni +50 ms", "bi (utterance)", "oracle (labels)"]
    assert rows[1]["lookahead_ms"] == "50.0" and rows[2]["lookahead_ms"] == ""
    assert float(rows[3]["onset_p50_ms"]) == pytest.approx(250, abs=32) and float(rows[3]["f1"]) == 1.0
    assert "| uni +50 ms |" in (out / "latency.md").read_text()
    for png in ("latency-accuracy.png", "timeline.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert again.returncode == 2 and "--force" in again.stderr


def test_cli_names_missing_models_without_traceback(tiny_set, tmp_path, capsys):
    data, models = tiny_set
    code = cli_main(["latency", "--models", "vad-uni-d7", str(tmp_path / "nope.pt"), "--data", str(data),
                     "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2
    assert "vad-uni-d7.pt not found" in err and "make models" in err
    assert "nope.pt not found" in err and "Traceback" not in err


@pytest.mark.slow
def test_example_runs(tiny_set):
    data, models = tiny_set
    done = subprocess.run([sys.executable, "examples/latency_comparison.py", "--data", str(data), "--models", *models],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "uni +50 ms" in done.stdout and "bi (utterance)" in done.stdout and "reference labels" in done.stdout
