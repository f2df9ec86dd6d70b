"""Tests for the live demo: ``streamseq mic``, :class:`LivePipeline`, its views and the example.

Microphone tests go through real PortAudio (sounddevice is not mocked) with the virtual ALSA
capture device of ``tests/virtual_capture.py``. That device is not paced in real time (it
delivers audio as fast as it can), so queues are sized to hold the whole test stream and
every delay is checked in stream time (audio consumed), never in wall time.

Recordings are espeak-ng phrases placed at known times in low noise at 48 kHz (so the
frontend resamples). Besides the shipped models, tests use a hand-set "energy" GRU: its
weights compute a thresholded log-mel energy, so it finds these phrases deterministically
without training.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import default_ctrl_c  # noqa: E402
from streamseq import BufferedProcessor, Session, load_model  # noqa: E402
from streamseq.apps.live import BiDecision, BlockUpdate, LivePipeline, UniSegment  # noqa: E402
from streamseq.apps.live_view import LiveView, PlainView  # noqa: E402
from streamseq.audio.resample import resample  # noqa: E402
from streamseq.audio.source import FileSource  # noqa: E402
from streamseq.cli.main import main  # noqa: E402
from streamseq.features import FeatureConfig, compute_features  # noqa: E402
from streamseq.models import ModelConfig, build_model, save_checkpoint  # noqa: E402
from streamseq.models.checkpoint import pretrained_path  # noqa: E402
from streamseq.streaming import finish_together  # noqa: E402
from streamseq.tasks.vad.postprocess import segments_from_probs  # noqa: E402
from virtual_capture import VirtualCapture, make_virtual_capture, needs_portaudio, run_python  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RATE = 48_000  # Hz, resampled to 16 kHz by the frontend
TOTAL_S = 10.0
PHRASES = [
    (0.8, "turn on the lights in the kitchen"), (4.0, "what is the weather like tomorrow"), (7.5, "stop the music")
]
BOUNDARY_TOL_S = 0.1


# --------------------------------------------------------------------------- fixtures
def make_recording(path: Path, tmp: Path, rate: int = RATE) -> list[tuple[float, float]]:
    """Write espeak-ng PHRASES at their times over low noise; return the true speech spans (s)."""
    rng = np.random.default_rng(0)
    audio = 0.003 * rng.standard_normal(int(TOTAL_S * rate))
    spans = []
    for start, text in PHRASES:
        subprocess.run(["espeak-ng", "-v", "en", "-s", "150", "-w", str(tmp / "phrase.wav"), text], check=True)
        x, r = sf.read(str(tmp / "phrase.wav"), dtype="float32")
        active = np.flatnonzero(np.abs(x) > 0.01)  # trim espeak's leading/trailing silence
        y = 0.5 * resample(torch.from_numpy(x[active[0] : active[-1] + 1]), r, rate).numpy()
        i = round(start * rate)
        audio[i : i + len(y)] += y
        spans.append((start, start + len(y) / rate))
    sf.write(str(path), audio.astype(np.float32), rate, subtype="PCM_16")
    return spans


def energy_vad(kind: str, output_delay: int = 0):
    """A VAD model whose GRU computes p = sigmoid(4 tanh(2 mean(log-mel - noise floor) + 0.4)), per frame.

    It has no memory, so with an output delay of k the output for frame t comes from frame t + k.
    """
    model = build_model(ModelConfig(kind=kind, hidden_size=1, num_layers=1, output_delay=output_delay), FeatureConfig())
    floor = compute_features(0.003 * np.random.default_rng(1).standard_normal(16000).astype(np.float32)).mean(0)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.set_normalization(floor, torch.ones_like(floor))
        for suffix in ("", "_reverse") if kind == "bi" else ("",):
            getattr(model.rnn, f"weight_ih_l0{suffix}")[2:] = 2.0 / 40  # candidate: mean normalised log-mel
            getattr(model.rnn, f"bias_ih_l0{suffix}")[1:] = torch.tensor([-20.0, 0.4])  # update gate shut
        model.head.weight.fill_(4.0 if kind == "uni" else 2.0)  # bi: both directions carry the same value
    model.set_task("vad", ["speech"])
    return model.eval()


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[float, float]]]:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")
    tmp = tmp_path_factory.mktemp("rec")
    return tmp / "phrases.wav", make_recording(tmp / "phrases.wav", tmp)


@pytest.fixture(scope="module")
def energy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("models")
    return {k: save_checkpoint(energy_vad(k), tmp / f"energy-{k}.pt") for k in ("uni", "bi")}


@pytest.fixture(scope="module")
def tone_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s at 16 kHz: a 1 s tone burst in noise."""
    t = np.arange(2 * 16000) / 16000
    burst = 0.3 * np.sin(2 * np.pi * 300 * t) * (np.abs(t - 1) < 0.5)
    x = 0.003 * np.random.default_rng(2).standard_normal(t.size) + burst
    path = tmp_path_factory.mktemp("tone") / "tone.wav"
    sf.write(str(path), x.astype(np.float32), 16000)
    return path


def offline_segments(model, path: Path) -> list[tuple[float, float]]:
    """Session over the whole file + segments_from_probs: the reference for the live path."""
    audio, rate = sf.read(str(path), dtype="float32")
    session = Session(model)
    probs = np.concatenate([session.accept(audio, sample_rate=rate).values[:, 0], session.finish().values[:, 0]])
    return [(s.start, s.end) for s in segments_from_probs(probs)]


# --------------------------------------------------------------------------- pipeline (in process)
@pytest.mark.slow
def test_pipeline_matches_offline_and_bi_answers_once_the_utterance_ended(recording, energy) -> None:
    path, spans = recording
    uni, bi = load_model(energy["uni"]), load_model(energy["bi"])
    pipeline = LivePipeline(uni, bi, preroll_s=0.5)
    events = []
    with FileSource(path, block_s=0.03, realtime=False) as source:
        summary = pipeline.run(source, on_event=events.append)

    live = [(u.start_s, u.end_s) for u in pipeline.uni_segments]
    np.testing.assert_allclose(live, offline_segments(uni, path), atol=1e-6)  # chunk-invariant: same segments
    assert len(live) == len(spans)
    audio, rate = sf.read(str(path), dtype="float32")
    for u, b, (_, speech_end) in zip(pipeline.uni_segments, pipeline.bi_decisions, spans, strict=True):
        assert b.decided_s >= u.end_decided_s >= speech_end, (b, u, speech_end)
        assert u.end_latency_s == pytest.approx(0.25, abs=0.011)  # min_silence_s - pad_s, no output delay
        assert b.origin_s == pytest.approx(u.start_s - 0.5, abs=1 / rate)
        # The bi frames are exactly those of a BufferedProcessor over the same stretch of audio.
        bp = BufferedProcessor(bi)
        bp.accept(audio[round(b.origin_s * rate) : round(b.decided_s * rate)], sample_rate=rate)
        np.testing.assert_allclose(b.probs, bp.finish().values[:, 0], atol=1e-5)
        assert any(s.start < u.end_s and s.end > u.start_s for s in b.segments)
    assert summary.segments == 3 and summary.blocks == int(np.ceil(TOTAL_S / 0.03))
    assert summary.mean_bi_frame_delay_s > 1.0 > 0.1 > summary.mean_uni_frame_delay_s

    # Events come in decision order; both views render them.
    assert [type(e) for e in events if isinstance(e, (UniSegment, BiDecision))] == [UniSegment, BiDecision] * 3
    out, view = io.StringIO(), LiveView("test")
    plain = PlainView(out)
    for e in events:
        view.update(e)
        plain.update(e)
    plain.finish(summary)
    text = out.getvalue()
    assert text.count("uni #") == 6 and text.count("bi  #") == 3 and "real-time factor" in text, text
    screen = view.export_text()
    assert "uni segment" in screen and "bi wait" in screen and screen.count(" – ") >= 6, screen


@pytest.mark.slow
def test_deferred_bi_passes_finished_in_one_batch_decide_as_the_immediate_ones(recording, energy) -> None:
    """What streamseq serve does: utterances of several streams wait, then one batched bi call."""
    uni, bi = load_model(energy["uni"]), load_model(energy["bi"])
    audio, rate = sf.read(str(recording[0]), dtype="float32")
    now = LivePipeline(uni, bi)
    later = [LivePipeline(uni, bi, defer_bi=True) for _ in range(2)]
    batches = []

    def complete() -> list:
        waiting = [p for p in later if p.pending_bi]
        if not waiting:
            return []
        outs = finish_together([proc for p in waiting for proc in p.bi_processors()])
        batches.append(len(outs))
        events, first = [], 0
        for p in waiting:
            n = len(p.pending_bi)
            events += p.complete_bi(outs[first : first + n], 0.0)
            first += n
        return events

    decided = []
    for i in range(0, len(audio), 480):
        now.accept(audio[i : i + 480], rate)
        events = [e for p in later for e in p.accept(audio[i : i + 480], rate)]
        assert not any(isinstance(e, BiDecision) for e in events)  # deferred, not run
        decided += [e for e in complete() if isinstance(e, BiDecision)]
    now.finish()
    for p in later:
        p.finish()
    decided += [e for e in complete() if isinstance(e, BiDecision)]
    assert len(now.bi_decisions) == 3 and batches == [2, 2, 2] and len(decided) == 6
    for p in later:
        assert not p.pending_bi
        for a, b in zip(now.bi_decisions, p.bi_decisions, strict=True):
            assert (a.utterance, a.origin_s, a.decided_s) == (b.utterance, b.origin_s, b.decided_s)
            np.testing.assert_allclose(a.probs, b.probs, atol=1e-5)
            assert [(s.start, s.end) for s in a.segments] == [(s.start, s.end) for s in b.segments]
    with pytest.raises(ValueError, match="expected the bi outputs of 0 pending utterances; received 1"):
        later[0].complete_bi([None], 0.0)  # type: ignore[list-item]


@pytest.mark.slow
def test_segment_cut_by_the_end_of_the_stream_has_no_latency(recording, energy) -> None:
    pipeline = LivePipeline(load_model(energy["uni"]), load_model(energy["bi"]))
    with FileSource(recording[0], realtime=False) as source:
        summary = pipeline.run(source, duration_s=5.0)  # inside the second phrase
    first, second = pipeline.uni_segments
    assert not first.at_stream_end and second.at_stream_end and second.end_s == 5.0
    assert pipeline.bi_decisions[1].decided_s == 5.0
    assert summary.mean_uni_end_latency_s == pytest.approx(first.end_latency_s)  # the cut one is left out
    assert summary.mean_bi_wait_s == pytest.approx(pipeline.bi_decisions[0].wait_s)


@pytest.mark.slow
def test_decision_times_include_the_uni_output_delay(recording) -> None:
    pipeline = LivePipeline(energy_vad("uni", output_delay=5))
    events = []
    with FileSource(recording[0], block_s=0.02, realtime=False) as source:
        pipeline.run(source, on_event=events.append)
    for i, e in enumerate(events):
        if isinstance(e, UniSegment):
            block_end = next(b.stream_s for b in events[i:] if isinstance(b, BlockUpdate))
            assert e.end_decided_s <= block_end  # decided no later than the audio that carried it
            # The 5 frames of lookahead add 50 ms to the end-of-speech delay (min_silence_s - pad_s = 0.25 s).
            assert e.end_latency_s == pytest.approx(0.30, abs=0.011), e


# --------------------------------------------------------------------------- CLI through PortAudio
def _run_cli(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(env, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "streamseq.cli.main", "mic", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def virtual_phrases(recording, tmp_path_factory: pytest.TempPathFactory) -> VirtualCapture:
    return make_virtual_capture(recording[0], tmp_path_factory.mktemp("alsa"), pad_s=3.0)


@pytest.mark.slow
@needs_portaudio
@pytest.mark.parametrize("models", ["shipped", "energy"])
def test_mic_through_portaudio_matches_offline_and_bi_waits(models, recording, energy, virtual_phrases, tmp_path):
    if models == "shipped":
        missing = [n for n in ("vad-uni", "vad-bi") if not pretrained_path(n).is_file()]
        if missing:
            pytest.skip(f"shipped models not trained yet: {missing}")
        uni_name, bi_name = "vad-uni", "vad-bi"
    else:
        uni_name, bi_name = str(energy["uni"]), str(energy["bi"])
    out = tmp_path / "session.json"
    duration = TOTAL_S + 0.5  # the device plays 3 s of zeros after the file
    proc = _run_cli(["--device", virtual_phrases.device, "--plain", "--json", str(out), "--duration", str(duration),
                     "--queue-blocks", str(int(duration / 0.05) + 20), "--model-uni", uni_name, "--model-bi", bi_name],
                    virtual_phrases.env)
    assert proc.returncode == 0, proc.stderr
    print(proc.stdout)
    result = json.loads(out.read_text())
    assert result["sample_rate"] == RATE and result["summary"]["stream_s"] == pytest.approx(duration)

    reference = offline_segments(load_model(uni_name), recording[0])
    live = [(u["start_s"], u["end_s"]) for u in result["uni"]]
    assert len(live) == len(reference) == len(PHRASES), (live, reference)
    assert np.max(np.abs(np.array(live) - np.array(reference))) <= BOUNDARY_TOL_S, (live, reference)
    for u, b, (_, speech_end) in zip(result["uni"], result["bi"], recording[1], strict=True):
        assert b["utterance"] == u["utterance"]
        assert b["decided_s"] >= u["end_decided_s"] >= speech_end, (b, u, speech_end)
        assert u["end_decided_s"] - speech_end <= 0.6, (u, speech_end)  # closed promptly after the speech
        assert b["wait_s"] == pytest.approx(b["decided_s"] - u["end_s"], abs=1e-3)
        assert any(s["start"] < u["end_s"] and s["end"] > u["start_s"] for s in b["segments"]), (u, b)
    lines = proc.stdout.splitlines()
    for i in range(1, len(PHRASES) + 1):  # printed in decision order too
        assert lines.index(next(x for x in lines if f"uni #{i} segment" in x)) < lines.index(
            next(x for x in lines if f"bi  #{i} " in x))
    assert "summary:" in proc.stdout and "real-time factor" in proc.stdout


DROP_CHILD = """
import io, json, sys, time
import torch
torch.set_num_threads(1)
from streamseq import load_model
from streamseq.apps.live import LivePipeline
from streamseq.apps.live_view import PlainView
from streamseq.audio.source import MicrophoneSource
device, uni, bi = sys.argv[1:4]
pipeline = LivePipeline(load_model(uni), load_model(bi), hook=lambda block: time.sleep(0.02))  # a slow consumer
out = io.StringIO()
view = PlainView(out)
with MicrophoneSource(device, block_s=0.05, queue_blocks=2) as mic:
    summary = pipeline.run(mic, duration_s=1.0, on_event=view.update)
view.finish(summary)
queued = 0
while mic.read(timeout=0.05) is not None:
    queued += 1
print(json.dumps({"summary": summary.to_dict(), "printed": out.getvalue(), "queued": queued,
                  "dropped_final": mic.dropped_blocks, "captured": mic.frames_captured, "block": mic.block_frames}))
"""


@pytest.mark.slow
@needs_portaudio
def test_slow_consumer_with_tiny_queue_counts_and_reports_dropped_blocks(tone_file, energy, tmp_path) -> None:
    vc = make_virtual_capture(tone_file, tmp_path, pad_s=2.0)
    proc = run_python(DROP_CHILD, vc.env, [vc.device, str(energy["uni"]), str(energy["bi"])])
    info = json.loads(proc.stdout.splitlines()[-1])
    summary = info["summary"]
    print(info["printed"])
    assert summary["dropped_blocks"] > 0 and summary["blocks"] == 20 and summary["stream_s"] == 1.0
    assert summary["proc_s"] >= 20 * 0.02  # the hook's sleeps are part of processing time
    # Every block the callback saw was processed, dropped, or still queued: nothing lost silently.
    assert info["captured"] == info["block"] * (summary["blocks"] + info["dropped_final"] + info["queued"])
    assert f"dropped blocks {summary['dropped_blocks']}" in info["printed"]
    assert "input overflow" in info["printed"]


@pytest.mark.slow
def test_missing_portaudio_exits_2_with_install_hint(energy) -> None:
    code = ("import ctypes.util, sys\nctypes.util.find_library = lambda name: None\n"
            "from streamseq.cli.main import main\nsys.exit(main(sys.argv[1:]))")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", code, "mic", "--model-uni", str(energy["uni"]), "--no-bi"],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc
    assert "apt-get install libportaudio2" in proc.stderr and "--input FILE" in proc.stderr
    assert "Traceback" not in proc.stderr


DEVICES_CHILD = """
import contextlib, io, json, sys
from streamseq.cli.main import main
results = {}
for key, argv in (("list", ["mic", "--list-devices"]),
                  ("bad", ["mic", "--device", "no-such-microphone", "--model-uni", sys.argv[1], "--no-bi"])):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    results[key] = {"code": code, "out": out.getvalue(), "err": err.getvalue()}
print(json.dumps(results))
"""


@pytest.mark.slow
@needs_portaudio
def test_list_devices_and_unknown_device(tone_file, energy, tmp_path) -> None:
    vc = make_virtual_capture(tone_file, tmp_path, pad_s=0.5)
    results = json.loads(run_python(DEVICES_CHILD, vc.env, [str(energy["uni"])]).stdout.splitlines()[-1])
    assert results["list"]["code"] == 0 and vc.device in results["list"]["out"]
    bad = results["bad"]
    assert bad["code"] == 2 and "no-such-microphone" in bad["err"] and "Available inputs" in bad["err"], bad


# --------------------------------------------------------------------------- --input, Ctrl-C, example
def test_input_file_is_paced_in_real_time_unless_fast(tone_file, energy, tmp_path) -> None:
    walls = {}
    for mode in ("realtime", "fast"):
        out = tmp_path / f"{mode}.json"
        args = ["mic", "--input", str(tone_file), "--plain", "--model-uni", str(energy["uni"]),
                "--model-bi", str(energy["bi"]), "--json", str(out)]
        args += ["--fast", "--record", str(tmp_path / "rec.wav")] if mode == "fast" else []
        start = time.monotonic()
        assert main(args) == 0
        walls[mode] = time.monotonic() - start
        result = json.loads(out.read_text())
        assert result["summary"]["stream_s"] == pytest.approx(2.0) and len(result["uni"]) == 1
    print(f"--input wall time: {walls}")
    assert 0.75 * 2.0 <= walls["realtime"] <= 1.25 * 2.0, walls
    assert walls["fast"] < 0.4 * 2.0, walls
    np.testing.assert_array_equal(sf.read(str(tmp_path / "rec.wav"))[0], sf.read(str(tone_file))[0])


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_prints_the_summary(recording, energy, tmp_path) -> None:
    out = tmp_path / "interrupted.json"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamseq.cli.main", "mic", "--input", str(recording[0]), "--plain", "--json", str(out),
         "--model-uni", str(energy["uni"]), "--model-bi", str(energy["bi"])],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=default_ctrl_c)
    assert proc.stdout is not None
    assert "streamseq mic" in proc.stdout.readline()  # the title: the stream has started
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "summary: segments" in stdout and "Traceback" not in stderr
    stream_s = json.loads(out.read_text())["summary"]["stream_s"]
    assert 1.0 < stream_s < 5.0, stream_s


@pytest.mark.slow
def test_example_script_prints_uni_then_bi_for_each_utterance(recording, energy) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / "live_mic_demo.py"), "--input", str(recording[0]), "--fast",
         "--model-uni", str(energy["uni"]), "--model-bi", str(energy["bi"])],
        env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    who = [line.split()[1] for line in proc.stdout.splitlines() if line.split()[1:2] in (["uni:"], ["bi:"])]
    assert who == ["uni:", "uni:", "bi:"] * 3, proc.stdout
    assert "stopped after 10.0s of audio" in proc.stdout
