"""Tests for streamseq.audio.source.

Microphone tests go through real PortAudio (sounddevice is not mocked): a child process
captures from a virtual ALSA device that plays a known recording (tests/virtual_capture.py).
They are skipped only when the PortAudio library itself cannot be loaded.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from streamseq.audio.devices import NoInputDeviceError, pick_input_device  # noqa: E402
from streamseq.audio.source import FileSource, MicrophoneSource  # noqa: E402
from virtual_capture import VirtualCapture, make_virtual_capture, needs_portaudio, run_python  # noqa: E402

RATE = 16_000  # Hz
DURATION_S = 1.5




def _make_recording(path: Path) -> np.ndarray:
    """Write a 1.5 s 16 kHz mono PCM_16 WAV (chirp + noise); return its samples as float32 (n,)."""
    t = np.arange(int(DURATION_S * RATE)) / RATE
    rng = np.random.default_rng(0)
    x = 0.3 * np.sin(2 * np.pi * (200 + 800 * t) * t) + 0.1 * rng.standard_normal(t.size)
    sf.write(str(path), x.astype(np.float32), RATE, subtype="PCM_16")
    samples, _ = sf.read(str(path), dtype="float32")
    return samples


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    path = tmp_path_factory.mktemp("audio") / "known.wav"
    return path, _make_recording(path)


@pytest.fixture(scope="module")
def virtual_mic(recording: tuple[Path, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> VirtualCapture:
    return make_virtual_capture(recording[0], tmp_path_factory.mktemp("alsa"), pad_s=2.0)


def _lag(captured: np.ndarray, reference: np.ndarray) -> int:
    """Frames by which ``reference`` appears delayed in ``captured`` (FFT cross-correlation)."""
    n = len(captured) + len(reference)
    size = 1 << (n - 1).bit_length()
    xcorr = np.fft.irfft(np.fft.rfft(captured, size) * np.conj(np.fft.rfft(reference, size)), size)
    lag = int(np.argmax(xcorr))
    return lag if lag < size - len(reference) else lag - size


# --------------------------------------------------------------------------- through PortAudio

CAPTURE_CHILD = """
import json, sys
import numpy as np
from streamseq.audio.source import MicrophoneSource
device, need, out, rec = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
blocks = []
with MicrophoneSource(device=device, block_s=0.05, queue_blocks=64, record_to=rec) as mic:
    while sum(len(b) for b in blocks) < need:
        block = mic.read(timeout=5.0)
        if block is None:
            sys.exit(f"read() gave None after {len(blocks)} blocks")
        blocks.append(block)
    info = {"sample_rate": mic.sample_rate, "block_frames": mic.block_frames,
            "shapes": sorted({b.shape for b in blocks}), "dtypes": sorted({str(b.dtype) for b in blocks})}
np.save(out, np.concatenate(blocks))
print(json.dumps(info))
"""


@pytest.mark.slow
@needs_portaudio
def test_virtual_microphone_capture_returns_the_known_recording(
    virtual_mic: VirtualCapture, recording: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    reference = recording[1]
    need = virtual_mic.frames + RATE // 2  # the file plus 0.5 s of the zero padding
    out, rec = tmp_path / "captured.npy", tmp_path / "recorded.wav"
    proc = run_python(CAPTURE_CHILD, virtual_mic.env, [virtual_mic.device, str(need), str(out), str(rec)])
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    captured = np.load(out)

    assert info["sample_rate"] == RATE, "device default rate should be the file's rate"
    assert info["shapes"] == [[800, 1]] and info["dtypes"] == ["float32"]
    mono = captured[:, 0]
    lag = _lag(mono[:need], reference)
    aligned = mono[lag : lag + len(reference)]
    max_err = float(np.max(np.abs(aligned - reference)))
    print(f"virtual capture: lag={lag} frames, max |error|={max_err:.3g}, blocks of {info['block_frames']}")
    assert 0 <= lag < info["block_frames"], f"expected a leading offset under one block, got {lag} frames"
    assert max_err <= 0.5 / 32768, f"captured samples differ from the file by up to {max_err}"
    assert np.all(mono[lag + len(reference) :] == 0.0), "expected the zero padding after the file"
    recorded, rec_rate = sf.read(str(rec), dtype="float32", always_2d=True)
    assert rec_rate == RATE
    np.testing.assert_array_equal(recorded, captured)


DROP_CHILD = """
import json, sys, time
import numpy as np
from streamseq.audio.source import MicrophoneSource
device, out = sys.argv[1], sys.argv[2]
with MicrophoneSource(device=device, block_s=0.01, queue_blocks=4) as mic:
    time.sleep(0.3)  # the consumer stalls; the callback keeps running
    first = [mic.read(timeout=1.0) for _ in range(4)]
rest = 0
while mic.read(timeout=0.1) is not None:
    rest += 1
np.save(out, np.concatenate(first))
print(json.dumps({"dropped": mic.dropped_blocks, "overflows": mic.overflows, "rest": rest,
                  "frames_captured": mic.frames_captured, "block_frames": mic.block_frames,
                  "active_after_stop": mic.active}))
"""


@pytest.mark.slow
@needs_portaudio
def test_microphone_counts_dropped_blocks_when_consumer_does_not_read(
    virtual_mic: VirtualCapture, recording: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    out = tmp_path / "first.npy"
    info = json.loads(run_python(DROP_CHILD, virtual_mic.env, [virtual_mic.device, str(out)]).stdout.splitlines()[-1])
    print(f"stalled consumer: {info}")
    assert info["dropped"] > 0, "a full queue must drop and count blocks"
    kept = 4 + info["rest"]
    assert info["frames_captured"] == info["block_frames"] * (kept + info["dropped"]), info
    # The queue keeps the oldest blocks and drops new ones, so the first reads are the file's start.
    first = np.load(out)[:, 0]
    np.testing.assert_array_equal(first, recording[1][: len(first)])
    assert info["active_after_stop"] is False


DEVICES_CHILD = """
import json
from streamseq.audio.devices import list_input_devices, resolve_device
from streamseq.audio.source import MicrophoneSource
import sys
name = sys.argv[1]
result = {"inputs": list_input_devices(),
          "by_name": resolve_device(name.upper()[3:12]),
          "by_index": resolve_device(list_input_devices()[0]["index"])}
for key, spec in (("bad_spec", "no-such-microphone"), ("bad_index", 999)):
    try:
        resolve_device(spec)
    except ValueError as exc:
        result[key] = str(exc)
try:
    MicrophoneSource(device="no-such-microphone").start()
except ValueError as exc:
    result["bad_source"] = str(exc)
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def device_queries(virtual_mic: VirtualCapture) -> dict:
    return json.loads(run_python(DEVICES_CHILD, virtual_mic.env, [virtual_mic.device]).stdout.splitlines()[-1])


@pytest.mark.slow
@needs_portaudio
def test_list_input_devices_reports_virtual_device_with_file_rate(
    device_queries: dict, virtual_mic: VirtualCapture
) -> None:
    entry = next(d for d in device_queries["inputs"] if d["name"] == virtual_mic.device)
    assert set(entry) == {"index", "name", "max_input_channels", "default_samplerate"}
    assert entry["default_samplerate"] == RATE and entry["max_input_channels"] >= 1


@pytest.mark.slow
@needs_portaudio
def test_resolve_device_matches_name_substring_case_insensitively_or_index(
    device_queries: dict, virtual_mic: VirtualCapture
) -> None:
    index = next(d["index"] for d in device_queries["inputs"] if d["name"] == virtual_mic.device)
    assert device_queries["by_name"] == index
    assert device_queries["by_index"] == device_queries["inputs"][0]["index"]


@pytest.mark.slow
@needs_portaudio
def test_bad_device_spec_raises_value_error_listing_inputs(device_queries: dict, virtual_mic: VirtualCapture) -> None:
    for key, spec in (("bad_spec", "no-such-microphone"), ("bad_index", "999"), ("bad_source", "no-such-microphone")):
        message = device_queries.get(key)
        assert message is not None, f"{key}: expected ValueError, none raised"
        assert spec in message and "Available inputs" in message and virtual_mic.device in message, message


MISSING_PORTAUDIO_CHILD = """
import ctypes.util
ctypes.util.find_library = lambda name: None  # as on a machine without libportaudio2
from streamseq.audio.devices import PortAudioUnavailableError
from streamseq.audio.source import MicrophoneSource
try:
    MicrophoneSource().start()
except PortAudioUnavailableError as exc:
    assert isinstance(exc, RuntimeError)
    print(exc)
"""


@pytest.mark.slow
def test_missing_portaudio_library_gives_runtime_error_naming_libportaudio2() -> None:
    message = run_python(MISSING_PORTAUDIO_CHILD, dict(os.environ)).stdout
    assert "libportaudio2" in message and "apt-get install libportaudio2" in message, message


# --------------------------------------------------------------------------- pure logic / files


def test_no_input_device_error_suggests_input_file_and_list_devices() -> None:
    with pytest.raises(NoInputDeviceError, match=r"No audio input device.*--input FILE.*--list-devices"):
        pick_input_device(None, [], None, devices_seen=2)


def test_ambiguous_device_name_raises_value_error_listing_matches() -> None:
    devices = [
        {"index": 0, "name": "USB Mic A", "max_input_channels": 1, "default_samplerate": 48000.0},
        {"index": 3, "name": "USB Mic B", "max_input_channels": 2, "default_samplerate": 44100.0},
    ]
    with pytest.raises(ValueError, match=r"ambiguous(.|\n)*USB Mic A(.|\n)*USB Mic B"):
        pick_input_device("usb", devices, 0, 2)
    assert pick_input_device("mic b", devices, 0, 2) == 3
    assert pick_input_device(None, devices, 0, 2) is None  # PortAudio's default input
    assert pick_input_device(None, devices, -1, 2) == 0  # no default: first input


@pytest.mark.parametrize("block_s", [0.001, 0.6, float("nan")])
def test_block_size_outside_5_to_500_ms_is_rejected(block_s: float, recording: tuple[Path, np.ndarray]) -> None:
    with pytest.raises(ValueError, match="block_s"):
        MicrophoneSource(block_s=block_s)
    with pytest.raises(ValueError, match="block_s"):
        FileSource(recording[0], block_s=block_s)


def _drain(source: FileSource) -> list[np.ndarray]:
    blocks = []
    while (block := source.read()) is not None:
        blocks.append(block)
    return blocks


def test_file_source_realtime_takes_about_the_file_duration(recording: tuple[Path, np.ndarray]) -> None:
    start = time.monotonic()
    with FileSource(recording[0], block_s=0.05, realtime=True) as source:
        blocks = _drain(source)
    elapsed = time.monotonic() - start
    assert 0.8 * DURATION_S <= elapsed <= 1.2 * DURATION_S, f"expected ~{DURATION_S} s, took {elapsed:.3f} s"
    assert sum(len(b) for b in blocks) == len(recording[1])


def test_file_source_unpaced_is_much_faster_and_returns_the_file(
    recording: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    rec = tmp_path / "copy.wav"
    start = time.monotonic()
    with FileSource(recording[0], block_s=0.05, realtime=False, record_to=rec) as source:
        blocks = _drain(source)
        assert (source.sample_rate, source.overflows, source.dropped_blocks) == (RATE, 0, 0)
    elapsed = time.monotonic() - start
    assert elapsed < 0.2 * DURATION_S, f"realtime=False should be much faster than {DURATION_S} s, took {elapsed:.3f}"
    assert all(b.shape == (800, 1) and b.dtype == np.float32 for b in blocks[:-1])
    audio = np.concatenate(blocks)
    np.testing.assert_array_equal(audio[:, 0], recording[1])
    np.testing.assert_array_equal(sf.read(str(rec), dtype="float32", always_2d=True)[0], audio)
    assert source.read() is None and not source.active
