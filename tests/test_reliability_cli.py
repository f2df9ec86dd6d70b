"""Reliability of the command line: no stale results passed off as done, no tracebacks.

Every CLI case runs the real ``streamseq`` in a subprocess on real files (soundfile) and real
checkpoints (small random models from ``conftest.make_model``). Interruptions are real too:
a SIGINT to a running ``process``, an input that fails, a ``--force`` on one file only.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import default_ctrl_c, make_model, noisy_tone
from streamseq.apps import WindowedProcessor
from streamseq.apps.latency import ReferenceProcessor, measure, stream_arrivals
from streamseq.apps.live import LivePipeline
from streamseq.features import FeatureConfig
from streamseq.models import ModelConfig, build_model, save_checkpoint

REPO = Path(__file__).resolve().parents[1]
RECORDING = REPO / "examples" / "audio" / "meeting_snippet.flac"
NEW = ("--threshold", "0", "--max-segment", "1")  # other settings: every second a segment


def streamseq(*args: object, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "streamseq.cli.main", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def process(*args: object) -> subprocess.CompletedProcess:
    return streamseq("process", *args, "--quiet")


def mic(*args: object) -> subprocess.CompletedProcess:
    return streamseq("mic", *args, "--fast", "--plain")


def assert_one_line_error(run: subprocess.CompletedProcess, *words: str, code: int | None = None) -> None:
    """A non-zero exit (``code`` if given) with an error line naming every word, and no traceback."""
    assert run.returncode != 0 if code is None else run.returncode == code, (run.returncode, run.stderr)
    assert "Traceback" not in run.stderr, run.stderr
    errors = [line for line in run.stderr.splitlines() if "error:" in line]
    assert any(all(w in line for w in words) for line in errors), (words, run.stderr)


def write(path: Path, signal_: np.ndarray, rate: int = 16000, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, signal_, rate, **kw)
    return path


def outputs(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.glob("[!.]*.json"))}


@pytest.fixture(scope="module")
def uni(tmp_path_factory) -> Path:
    return save_checkpoint(make_model("uni", seed=4), tmp_path_factory.mktemp("models") / "uni.pt")


@pytest.fixture
def corpus(tmp_path) -> Path:
    for i in range(4):
        write(tmp_path / "in" / f"f{i}.wav", noisy_tone(2.0, seed=i))
    return tmp_path / "in"


# --------------------------------------------------------------------------- 1. stale results
@pytest.mark.slow
def test_rerun_redoes_the_outputs_a_single_file_force_run_left_with_the_old_settings(tmp_path, corpus, uni):
    out = tmp_path / "out"
    assert process(corpus, "--model", uni, "--out", out).returncode == 0
    old = outputs(out)
    assert process(corpus / "f1.wav", "--model", uni, "--out", out, "--force", *NEW).returncode == 0
    rerun = process(corpus, "--model", uni, "--out", out, *NEW)
    assert rerun.returncode == 0, rerun.stderr
    assert "3 file(s) ok, 0 failed, 1 skipped" in rerun.stderr  # exactly the three stale ones
    assert process(corpus, "--model", uni, "--out", tmp_path / "fresh", *NEW).returncode == 0
    assert outputs(out) == outputs(tmp_path / "fresh") != old


@pytest.mark.slow
def test_rerun_redoes_the_output_a_failed_input_left_with_the_old_settings(tmp_path, corpus, uni):
    out = tmp_path / "out"
    assert process(corpus, "--model", uni, "--out", out).returncode == 0
    good = (corpus / "f2.wav").read_bytes()
    (corpus / "f2.wav").write_bytes(good[: len(good) // 2])  # truncated: this input fails
    failed = process(corpus, "--model", uni, "--out", out, "--force", *NEW)
    assert failed.returncode == 1 and "3 file(s) ok, 1 failed" in failed.stderr
    (corpus / "f2.wav").write_bytes(good)
    rerun = process(corpus, "--model", uni, "--out", out, *NEW)
    assert rerun.returncode == 0, rerun.stderr
    assert "1 file(s) ok, 0 failed, 3 skipped" in rerun.stderr
    assert process(corpus, "--model", uni, "--out", tmp_path / "fresh", *NEW).returncode == 0
    assert outputs(out) == outputs(tmp_path / "fresh")


@pytest.mark.slow
def test_rerun_after_ctrl_c_of_a_force_run_redoes_the_unfinished_files(tmp_path, uni):
    for i in range(10):
        write(tmp_path / "in" / f"f{i}.wav", noisy_tone(4.0, seed=i))
    args = [tmp_path / "in", "--model", uni, "--block", "0.01"]  # small blocks: ~0.15 s per file
    out = tmp_path / "out"
    assert process(*args, "--out", out).returncode == 0
    old = outputs(out)
    before = {p: p.stat().st_mtime_ns for p in out.glob("[!.]*.json")}
    cmd = [sys.executable, "-m", "streamseq.cli.main", "process", *map(str, args), "--out", str(out), "--force",
           *NEW, "--quiet"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_ctrl_c)
    deadline = time.monotonic() + 60
    while all(p.stat().st_mtime_ns == t for p, t in before.items()) and proc.poll() is None:
        assert time.monotonic() < deadline, "the --force run rewrote nothing within 60 s"
        time.sleep(0.005)
    time.sleep(0.03)  # into the next file
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in stderr, stderr
    stale = [name for name, text in outputs(out).items() if text == old[name]]
    assert 0 < len(stale) < len(old), stale  # interrupted part-way: some outputs new, some old

    rerun = process(*args, "--out", out, *NEW)
    assert rerun.returncode == 0, rerun.stderr
    done = re.search(r"(\d+) file\(s\) ok, 0 failed, (\d+) skipped", rerun.stderr)
    assert done is not None, rerun.stderr
    redone, skipped = map(int, done.groups())
    # every stale output is redone; at most one more: one whose record the signal cut off
    assert len(stale) <= redone <= len(stale) + 1 and redone + skipped == len(old), (stale, rerun.stderr)
    assert process(*args, "--out", tmp_path / "fresh", *NEW).returncode == 0
    assert outputs(out) == outputs(tmp_path / "fresh")


# --------------------------------------------------------------------------- 2. messages, not tracebacks
@pytest.mark.slow
@pytest.mark.parametrize("where", ["onto a file", "under a file"])
def test_process_out_that_cannot_be_a_folder_is_refused_before_any_work(tmp_path, corpus, uni, where):
    blocker = tmp_path / "taken.txt"
    blocker.write_text("not a folder")
    out = blocker if where == "onto a file" else blocker / "sub"
    run = process(corpus, "--model", uni, "--out", out)
    assert_one_line_error(run, f"--out {out}", f"{blocker} is a file, not a folder", code=2)
    assert blocker.read_text() == "not a folder" and "file(s) ok" not in run.stderr  # nothing was processed


@pytest.mark.slow
def test_export_out_onto_an_existing_file_is_refused_with_a_message(tmp_path, uni):
    blocker = tmp_path / "taken.txt"
    blocker.write_text("not a folder")
    run = streamseq("export", uni, "--out", blocker, "--format", "torchscript")
    assert_one_line_error(run, f"--out {blocker}", "is a file, not a folder", code=1)


@pytest.mark.slow
def test_mic_reports_a_truncated_flac_after_saving_what_it_processed(tmp_path, uni):
    flac = write(tmp_path / "talk.flac", noisy_tone(3.0))
    data = flac.read_bytes()
    flac.write_bytes(data[: len(data) // 2])
    run = mic("--input", flac, "--model-uni", uni, "--no-bi", "--json", tmp_path / "s.json")
    assert_one_line_error(run, str(flac), "decoding failed", "truncated or corrupt", code=1)
    assert "summary:" in run.stdout
    saved = json.loads((tmp_path / "s.json").read_text())
    assert 0 < saved["summary"]["stream_s"] < 3.0 and "decoding failed" in saved["error"]


@pytest.mark.slow
def test_mic_reports_nan_samples_after_saving_what_came_before_them(tmp_path, uni):
    audio = noisy_tone(3.0)
    audio[20_000] = np.nan  # in the 26th block of 50 ms
    wav = write(tmp_path / "nan.wav", audio, subtype="FLOAT")
    run = mic("--input", wav, "--model-uni", uni, "--no-bi", "--json", tmp_path / "s.json")
    assert_one_line_error(run, str(wav), "stopped at 1.25 s", "NaN", code=1)
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["summary"]["stream_s"] == 1.25 and saved["summary"]["blocks"] == 25


@pytest.mark.slow
@pytest.mark.parametrize("option", ["--json", "--screen", "--record"])
def test_mic_output_that_cannot_be_written_is_refused_before_the_stream_starts(tmp_path, uni, option):
    wav = write(tmp_path / "talk.wav", noisy_tone(1.0))
    target = wav / "out.json"  # under a file
    run = mic("--input", wav, "--model-uni", uni, "--no-bi", option, target)
    assert_one_line_error(run, f"{option} {target}", f"{wav} is a file, not a folder", code=2)
    assert run.stdout == ""  # the stream never started


@pytest.mark.slow
def test_mic_rejects_a_truncated_wav_as_process_does(tmp_path, uni):
    wav = write(tmp_path / "talk.wav", noisy_tone(2.0))
    data = wav.read_bytes()
    wav.write_bytes(data[: len(data) // 2])
    assert_one_line_error(mic("--input", wav, "--model-uni", uni, "--no-bi"), str(wav), "truncated", code=2)
    assert_one_line_error(process(wav, "--model", uni), str(wav), "truncated", code=1)


@pytest.mark.slow
def test_missing_input_file_is_named_instead_of_a_system_error(tmp_path, uni):
    missing = tmp_path / "nope.wav"
    run = mic("--input", missing, "--model-uni", uni, "--no-bi")
    assert_one_line_error(run, f"{missing}: no such file", code=2)
    assert "System error" not in run.stderr


@pytest.mark.slow
@pytest.mark.parametrize("value", ["-1", "0", "nan"])
def test_mic_duration_must_be_positive(tmp_path, uni, value):
    wav = write(tmp_path / "talk.wav", noisy_tone(1.0))
    run = mic("--input", wav, "--model-uni", uni, "--no-bi", "--duration", value)
    assert_one_line_error(run, "--duration", "positive", value, code=2)


def damaged_checkpoints(folder: Path) -> dict[str, tuple[Path, list[str]]]:
    """Checkpoints damaged in one way each, and the words their error must hold."""
    good = save_checkpoint(make_model("uni", seed=5), folder / "good.pt")
    payload = torch.load(good, weights_only=True)
    del payload["task"]
    torch.save(payload, folder / "no-task.pt")
    payload = torch.load(good, weights_only=True)
    payload["state_dict"]["rnn.weight_hh_l1"][3, 2] = float("nan")
    torch.save(payload, folder / "nan.pt")
    (folder / "run").mkdir()
    save_checkpoint(make_model("uni", seed=6), folder / "run" / "best.pt")
    return {"no task": (folder / "no-task.pt", ["no-task.pt", "'task'"]),
            "nan weights": (folder / "nan.pt", ["nan.pt", "rnn.weight_hh_l1", "NaN"]),
            "a folder": (folder / "run", [str(folder / "run"), "is a folder", "best.pt"])}


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["no task", "nan weights", "a folder"])
def test_damaged_checkpoint_is_named_with_what_is_wrong(tmp_path, damage):
    wav = write(tmp_path / "talk.wav", noisy_tone(1.0))
    path, words = damaged_checkpoints(tmp_path)[damage]
    assert_one_line_error(process(wav, "--model", path), *words, code=2)


@pytest.mark.parametrize("rate", [float("nan"), float("inf")])
def test_apps_reject_nan_and_inf_sample_rates_with_a_message(rate):
    """Not reachable from the CLI (rates come from file headers and devices): the Python API."""
    block = noisy_tone(0.1)
    pipeline = LivePipeline(make_model("uni"))
    with pytest.raises(ValueError, match="sample_rate"):
        pipeline.accept(block, rate)
    assert pipeline.accept(block, 16000)[-1].stream_s == pytest.approx(0.1)  # the rejected block left no trace
    with pytest.raises(ValueError, match="sample_rate"):
        stream_arrivals(ReferenceProcessor(np.zeros(10)), block, sample_rate=rate)


# --------------------------------------------------------------------------- 3. the live example
@pytest.mark.slow
def test_live_example_caps_decisions_at_the_end_of_the_stream():
    """A model with 100 ms lookahead, stopped inside an utterance: the segment is closed by the end
    of the stream, at 3.00 s, not 100 ms after it."""
    run = subprocess.run([sys.executable, str(REPO / "examples" / "live_mic_demo.py"), "--input", str(RECORDING),
                          "--fast", "--seconds", "3", "--model-uni", "vad-uni-d10"],
                         env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    decided = [float(line.split()[0].rstrip("s")) for line in run.stdout.splitlines() if " uni: " in line]
    assert decided and max(decided) <= 3.0, run.stdout
    assert "closed by the end of the stream" in run.stdout and "stopped after 3.0s of audio" in run.stdout


# --------------------------------------------------------------------------- 4. frame grid from the model
def test_latency_of_a_20ms_model_is_measured_on_its_own_frame_grid():
    features = FeatureConfig(hop_length=320)  # 20 ms frames
    model = build_model(ModelConfig(kind="uni", hidden_size=8), features).eval()
    model.set_task("vad", ["speech"])
    labels = np.zeros(150, np.int8)  # 3 s
    labels[50:100] = 1  # speech from 1.0 to 2.0 s
    (m,) = measure(model, [(noisy_tone(3.0), labels, {})])
    (ref,) = m.reference
    assert (ref.start, ref.end) == pytest.approx((1.0, 2.0))
    assert m.arrival_s.max() == pytest.approx(3.0)


def test_windowed_processor_needs_the_rate_of_its_input():
    processor = WindowedProcessor(make_model("bi"), window_s=1.0, context_s=0.2)
    with pytest.raises(TypeError, match="sample_rate"):
        processor.accept(noisy_tone(0.5))  # no silent 16 kHz
