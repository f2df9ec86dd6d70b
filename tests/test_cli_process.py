"""``streamseq process`` end to end: the real CLI in a subprocess, real files through soundfile."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import streamseq
from conftest import chunk, make_model, noisy_tone
from streamseq import BufferedProcessor, Session
from streamseq.apps import WindowedProcessor
from streamseq.audio.resample import resample
from streamseq.models import save_checkpoint
from streamseq.tasks.vad.postprocess import Segmenter, SegmenterConfig

REPO = Path(__file__).resolve().parents[1]
SHIPPED_UNI = Path(streamseq.__file__).parent / "pretrained" / "vad-uni.pt"


def cli(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "streamseq.cli.main", "process", *map(str, args), "--quiet"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=cwd or REPO)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {kind: save_checkpoint(make_model(kind, seed=4), root / f"{kind}.pt") for kind in ("uni", "bi")}


def write(path: Path, signal: np.ndarray, rate: int = 16000, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, signal, rate, **kw)
    return path


def stream_probs(model, signal: np.ndarray, rate: int, seed: int = 0) -> np.ndarray:
    """The live path: a Session fed chunks of random sizes."""
    sizes = list(np.random.default_rng(seed).integers(1, rate // 2, 20))
    session = Session(model)
    outs = [session.accept(c, sample_rate=rate) for c in chunk(signal, sizes)] + [session.finish()]
    return np.concatenate([o.values[:, 0] for o in outs])


# --------------------------------------------------------------------------- accuracy
def espeak(text: str, rate: int) -> np.ndarray:
    with io.BytesIO(subprocess.run(["espeak-ng", "--stdout", text], capture_output=True, check=True).stdout) as f:
        x, sr = sf.read(f, dtype="float32")
    active = np.flatnonzero(np.abs(x) > 0.02 * np.abs(x).max())
    x = x[active[0] : active[-1] + 1]  # the speech itself, no leading/trailing silence
    return resample(torch.from_numpy(x), sr, rate).numpy()


def speech_scene(rate: int, channels: int, seed: int) -> tuple[np.ndarray, list[tuple[float, float]]]:
    rng = np.random.default_rng(seed)
    scene = 0.003 * rng.standard_normal((int(9.0 * rate), channels)).astype(np.float32)
    regions = []
    for text, start in [("the quick brown fox jumps over the lazy dog", 1.0),
                        ("streaming speech detection works offline too", 5.2)]:
        speech = 0.5 * espeak(text, rate)
        i = int(start * rate)
        scene[i : i + len(speech)] += speech[:, None] * np.linspace(1.0, 0.7, channels)[None]
        regions.append((start, start + len(speech) / rate))
    return scene, regions


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_shipped_vad_uni_finds_known_speech_regions(tmp_path):
    expected = {}
    for name, rate, channels in [("mono16k.wav", 16000, 1), ("stereo44k.flac", 44100, 2)]:
        scene, expected[name] = speech_scene(rate, channels, seed=rate)
        write(tmp_path / "in" / name, scene, rate)
    run = cli(tmp_path / "in", "--model", "vad-uni", "--out", tmp_path / "out", "--pad", "0")
    assert run.returncode == 0, run.stderr
    for name, regions in expected.items():
        found = json.loads((tmp_path / "out" / Path(name).with_suffix(".json")).read_text())["segments"]
        assert len(found) == len(regions), (name, found, regions)
        for seg, (start, end) in zip(found, regions, strict=True):
            assert abs(seg["start"] - start) < 0.2 and abs(seg["end"] - end) < 0.2, (name, seg, (start, end))


# --------------------------------------------------------------------------- formats
@pytest.mark.slow
def test_every_output_format_parses(tmp_path, ckpt):
    wav = write(tmp_path / "in" / "tone one.wav", noisy_tone(3.0))
    seg_args = ["--threshold", "0", "--max-segment", "1", "--min-speech", "0.1"]  # 3+ segments
    for fmt in ("json", "csv", "rttm", "audacity", "srt"):
        run = cli(wav, "--model", ckpt["uni"], "--out", tmp_path / "out", "--format", fmt, *seg_args)
        assert run.returncode == 0, run.stderr
    out = tmp_path / "out"
    result = json.loads((out / "tone one.json").read_text())
    assert set(result) == {"file", "duration", "sample_rate", "model", "segments"}
    assert result["duration"] == 3.0 and result["sample_rate"] == 16000
    segs = result["segments"]
    assert len(segs) >= 3 and all(set(s) == {"start", "end", "mean_prob"} for s in segs)
    rows = list(csv.DictReader((out / "tone one.csv").open()))
    assert [float(r["start"]) for r in rows] == [s["start"] for s in segs]
    for line in (out / "tone one.rttm").read_text().splitlines():
        f = line.split()
        assert len(f) == 10 and f[0] == "SPEAKER" and f[1] == "tone_one" and f[7] == "speech"
        float(f[3]), float(f[4])
    labels = [line.split("\t") for line in (out / "tone one.txt").read_text().splitlines()]
    assert all(len(x) == 3 and x[2] == "speech" for x in labels) and len(labels) == len(segs)
    cues = (out / "tone one.srt").read_text().strip().split("\n\n")
    timing = re.compile(r"^\d\d:\d\d:\d\d,\d\d\d --> \d\d:\d\d:\d\d,\d\d\d$")
    for number, cue in enumerate(cues, 1):
        lines = cue.splitlines()
        assert lines[0] == str(number) and timing.match(lines[1]) and lines[2] == "speech"
    table = cli(wav, "--model", ckpt["uni"], *seg_args)  # one file, no --out: table on stdout
    assert table.returncode == 0 and "tone one.wav" in table.stdout and "speech:" in table.stdout
    assert "1 file(s) ok" in table.stderr and "tone one" not in table.stderr


# --------------------------------------------------------------------------- robustness
@pytest.mark.slow
def test_bad_files_are_named_and_the_good_ones_processed(tmp_path, ckpt):
    write(tmp_path / "in" / "good.wav", noisy_tone(1.0))
    write(tmp_path / "in" / "sub" / "good2.flac", noisy_tone(1.0, rate=44100, channels=2), 44100)
    (tmp_path / "in" / "corrupt.wav").write_bytes(np.random.default_rng(1).bytes(3000))
    (tmp_path / "in" / "empty.wav").write_bytes(b"")
    run = cli(tmp_path / "in", "--model", ckpt["uni"], "--out", tmp_path / "out", "--jobs", "2")
    assert run.returncode == 1
    assert re.search(r"corrupt\.wav: not a readable audio file", run.stderr)
    assert re.search(r"empty\.wav: empty file \(0 bytes\)", run.stderr)
    assert "2 file(s) ok, 2 failed" in run.stderr
    done = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("[!.]*.json"))
    assert done == ["good.json", "sub/good2.json"]


@pytest.mark.slow
def test_outputs_are_not_overwritten_without_force_and_reruns_skip(tmp_path, ckpt):
    for i in range(2):
        write(tmp_path / "in" / f"f{i}.wav", noisy_tone(1.0, seed=i))
    args = [tmp_path / "in", "--model", ckpt["uni"], "--out", tmp_path / "out", "--format", "csv"]
    assert cli(*args).returncode == 0
    first = {p.name: p.read_text() for p in (tmp_path / "out").glob("*.csv")}
    (tmp_path / "out" / "f1.csv").unlink()  # as if interrupted before f1 was written
    rerun = cli(*args)
    assert rerun.returncode == 0 and "1 file(s) ok, 0 failed, 1 skipped" in rerun.stderr
    changed = cli(*args, "--threshold", "0")  # other settings: refuse, name the outputs
    assert changed.returncode == 1 and "f0.csv exists" in changed.stderr and "--force" in changed.stderr
    assert {p.name: p.read_text() for p in (tmp_path / "out").glob("*.csv")} == first
    forced = cli(*args, "--threshold", "0", "--force")
    assert forced.returncode == 0 and "2 file(s) ok" in forced.stderr
    assert (tmp_path / "out" / "f0.csv").read_text() != first["f0.csv"]
    assert not list((tmp_path / "out").glob(".*.tmp"))


# --------------------------------------------------------------------------- consistency
@pytest.mark.slow
def test_file_path_equals_the_streaming_path(tmp_path, ckpt):
    model = streamseq.load_model(ckpt["uni"])
    signal = noisy_tone(6.0, rate=44100, channels=2, seed=5)
    wav = write(tmp_path / "s.wav", signal, 44100, subtype="FLOAT")
    probs = stream_probs(model, signal, 44100)
    level = float(np.median(probs))  # a threshold that gives many segments
    cfg = SegmenterConfig(onset=level, offset=level, min_speech_s=0.05, min_silence_s=0.1)
    segmenter = Segmenter(cfg)
    events = [e for c in chunk(probs, [7, 130, 1]) for e in segmenter.push(c)] + segmenter.flush()
    expected = [e.segment for e in events if e.kind == "end"]
    run = cli(wav, "--model", ckpt["uni"], "--out", tmp_path / "out", "--frames", "npy", "--block", "0.37",
              "--onset", level, "--offset", level, "--min-speech", "0.05", "--min-silence", "0.1")
    assert run.returncode == 0, run.stderr
    np.testing.assert_allclose(np.load(tmp_path / "out" / "s.frames.npy"), probs, atol=1e-6)
    got = json.loads((tmp_path / "out" / "s.json").read_text())["segments"]
    assert len(expected) > 3 and len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert (g["start"], g["end"]) == (round(e.start, 3), round(e.end, 3))
        assert abs(g["mean_prob"] - e.mean_prob) < 1e-4


@pytest.mark.slow
def test_bi_model_windows_agree_with_whole_file_processing(tmp_path, ckpt):
    model = streamseq.load_model(ckpt["bi"])
    signal = noisy_tone(5.0, seed=6)
    wav = write(tmp_path / "b.wav", signal, subtype="FLOAT")
    whole = BufferedProcessor(model)
    whole.accept(signal, sample_rate=16000)
    run = cli(wav, "--model", ckpt["bi"], "--out", tmp_path / "out", "--frames", "npy",
              "--bi-window", "1.5", "--bi-context", "0.5", "--block", "0.7")
    assert run.returncode == 0, run.stderr
    np.testing.assert_allclose(np.load(tmp_path / "out" / "b.frames.npy"), whole.finish().values[:, 0], atol=1e-4)


def test_bi_windows_bound_the_buffer_and_tile_the_input():
    model = make_model("bi", seed=2)
    signal = noisy_tone(4.0, seed=9)
    processor = WindowedProcessor(model, window_s=1.0, context_s=0.2)  # W = 100, X = 20 frames
    outs, most = [], 0
    for part in chunk(signal, [1600, 3, 7000]):
        outs.append(processor.accept(part, sample_rate=16000))
        most = max(most, processor.buffered_frames)
    outs.append(processor.finish())
    assert most <= 100 + 7000 // 160 + 1  # one window + the frames of the chunk just accepted
    assert [o.start_frame for o in outs[1:]] == list(np.cumsum([len(o) for o in outs])[:-1])
    assert sum(len(o) for o in outs) == 400


@pytest.mark.slow
def test_channel_picks_one_channel_and_is_validated(tmp_path, ckpt):
    model = streamseq.load_model(ckpt["uni"])
    left, right = noisy_tone(2.0, seed=7), 0.1 * noisy_tone(2.0, seed=8)[::-1].copy()
    wav = write(tmp_path / "st.wav", np.stack([left, right], axis=1), subtype="FLOAT")
    run = cli(wav, "--model", ckpt["uni"], "--out", tmp_path / "out", "--frames", "npy", "--channel", "1")
    assert run.returncode == 0, run.stderr
    expected = stream_probs(model, right, 16000)
    np.testing.assert_allclose(np.load(tmp_path / "out" / "st.frames.npy"), expected, atol=1e-6)
    bad = cli(wav, "--model", ckpt["uni"], "--channel", "2")
    assert bad.returncode == 1
    assert "st.wav: channel 2 requested but the file has 2 channel(s) (valid: 0..1)" in bad.stderr
    assert cli(wav, "--model", ckpt["uni"], "--channel", "-1").returncode == 2


@pytest.mark.slow
def test_shards_partition_the_sorted_inputs(tmp_path, ckpt):
    names = [f"d{i}/x{i}.wav" for i in range(5)]
    for i, name in enumerate(names):
        write(tmp_path / "in" / name, noisy_tone(0.3, seed=i))
    shards = []
    for index in (0, 1):
        run = cli("in", "--model", ckpt["uni"], "--format", "json", "--shard", f"{index}/2", cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        shards.append([json.loads(line)["file"] for line in run.stdout.splitlines()])  # JSON lines
    everything = sorted(f"in/{n}" for n in names)
    assert shards == [everything[0::2], everything[1::2]]


@pytest.mark.slow
def test_example_script_runs(tmp_path, ckpt):
    wav = write(tmp_path / "e.wav", noisy_tone(1.0))
    run = subprocess.run([sys.executable, str(REPO / "examples" / "process_files.py"), str(wav),
                          "--model", str(ckpt["uni"])], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "e.wav" in run.stdout


@pytest.mark.slow
def test_table_on_a_terminal_reads_cleanly_around_the_progress_bars():
    """The README's demo command as a person sees it: stdout and stderr on one terminal."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    import pyte

    cols, rows = 120, 40
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "streamseq.cli.main", "process",
                             "examples/audio/meeting_snippet.flac", "--format", "table"],
                            stdin=slave, stdout=slave, stderr=slave, cwd=REPO, close_fds=True)
    os.close(slave)
    data = b""
    while True:
        try:
            block = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not block:
            break
        data += block
    os.close(master)
    assert proc.wait(timeout=120) == 0
    screen = pyte.Screen(cols, rows)
    pyte.ByteStream(screen).feed(data)
    lines = [line.rstrip() for line in screen.display]
    header = next(i for i, line in enumerate(lines) if "meeting_snippet.flac" in line)
    assert lines[header].startswith("examples/audio/meeting_snippet.flac  (15.00 s, 16000 Hz, model vad-uni)")
    assert lines[header + 1].split() == ["#", "start", "end", "length", "prob"]
    summary = next(i for i, line in enumerate(lines) if "streamseq process:" in line)
    assert lines[summary].startswith("streamseq process: 1 file(s) ok")
    speech = next(i for i, line in enumerate(lines) if line.startswith("speech: "))
    assert header < speech < summary and lines[speech].endswith("% of the file")
