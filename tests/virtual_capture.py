"""Virtual ALSA microphone for tests: real PortAudio captures a known sound file.

How it works
------------
:func:`make_virtual_capture` converts the WAV to raw little-endian float32 (interleaved,
followed by ``pad_s`` seconds of zeros) and writes a test-only ALSA config defining one
capture-only PCM, by default named ``streamseq_virtmic``::

    pcm.streamseq_virtmic {
        type asym                       # capture side only: PortAudio shows "N in, 0 out"
        capture.pcm {
            type plug                   # fixes what PortAudio sees: default rate = file rate
            slave {
                pcm {
                    type file           # replaces captured data with bytes from `infile`
                    slave.pcm { type null }   # null: a capture device that yields silence
                    file "/dev/null"    # (the plugin insists on an output file)
                    infile "<tmp>/capture.f32"
                    format "raw"
                }
                format FLOAT_LE
                rate <file rate>
                channels <file channels>
            }
        }
    }

The returned environment sets ``ALSA_CONFIG_PATH=<system alsa.conf>:<this config>``. ALSA
reads that variable, and PortAudio enumerates devices once at ``Pa_Initialize`` (when
``sounddevice`` is imported), so it only works in a fresh process: run the code under test
with :func:`run_python` (or set the variable before the first ``import sounddevice``).
The system ``alsa.conf`` must come first: with only this file in the path PortAudio aborts
(SIGABRT) during initialisation.

Behaviour measured on Debian 12 (alsa-lib 1.2.8, PortAudio 19.6.0, sounddevice 0.5.6)
---------------------------------------------------------------------------------------
* Fidelity: capturing float32 at the file's own rate and channel count returns the file's
  samples bit-exactly (a PCM_16 WAV gives exactly ``int16 / 32768``), with zero lag: every
  stream opens the infile afresh, so each capture starts at the file's first frame.
* Only that native format is safe. Any conversion by the ``plug`` layer (another rate,
  another channel count, int16 instead of float32) makes the ``file`` plugin read the
  whole offered mmap area from ``infile`` while fewer frames are committed, so chunks of the
  file are silently skipped. Capture float32 with ``sample_rate=None`` (the device default,
  which equals the file rate) and ``channels=capture.channels``.
* Timing: the ``null`` slave never blocks, so the device is NOT paced in real time; the
  PortAudio callback runs as fast as it can (measured 6e7 to 1e8 frames/s, i.e. thousands of
  times real time, with one CPU core busy while the stream is open). It tests the data path,
  queueing and dropping, not real-time timing; PortAudio never reports ``input_overflow`` from
  it. Keep streams short.
* End of file: after the data, the ``pad_s`` seconds of zeros are delivered. After that the
  plugin's ``read()`` returns 0 bytes and leaves the capture buffer untouched, so PortAudio
  keeps receiving whatever was last in ALSA's ring buffer. With the padding much longer
  than that buffer (~0.1 s) the ring is all zeros, so it reads as endless silence (measured:
  8.5 s of zeros after a 1 s pad). With ``pad_s=0`` it repeats stale file data instead.
* Rates: any rate and channel count the WAV has (the ``null`` slave accepts anything;
  checked bit-exact at 8000, 16000, 22050 Hz mono and 48000 Hz stereo); PortAudio reports
  the file's rate as ``default_samplerate``. The plug layer advertises up
  to 128 input channels, but only ``channels`` reproduces the file (see above).
* Other ALSA PCMs from the system/user config (e.g. ``default`` or ``pulse`` on a desktop)
  are still listed, so always pass ``device`` explicitly; don't rely on the default input.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from streamseq.debian import locate

DEVICE_NAME = "streamseq_virtmic"
_CONVERT_BLOCK_FRAMES = 65536

_CONFIG_TEMPLATE = """\
# Test-only ALSA config written by tests/virtual_capture.py: a capture device
# that plays {infile_comment}.
pcm.{name} {{
    type asym
    capture.pcm {{
        type plug
        slave {{
            pcm {{
                type file
                slave.pcm {{ type null }}
                file "/dev/null"
                infile "{infile}"
                format "raw"
            }}
            format FLOAT_LE
            rate {rate}
            channels {channels}
        }}
    }}
    hint.description "streamseq virtual microphone (test)"
}}
"""


@dataclass(frozen=True)
class VirtualCapture:
    """A written virtual-microphone config and how to use it."""

    env: dict[str, str]  # environment for the subprocess (ALSA_CONFIG_PATH set)
    device: str  # PortAudio/ALSA device name to open
    sample_rate: int  # Hz; capture at this rate (the device default) for exact data
    channels: int  # capture this many channels for exact data
    frames: int  # frames of audio from the WAV, before the zero padding
    pad_frames: int  # frames of zeros after the audio
    raw_path: Path  # the float32 raw file the device plays
    config_path: Path  # the ALSA config file


def system_alsa_conf() -> Path:
    """Path of the system's top-level alsa.conf (needed before our config in ALSA_CONFIG_PATH)."""
    return locate("alsa-conf")


def _write_raw_float32(wav_path: Path, raw_path: Path, pad_frames: int) -> tuple[int, int, int]:
    """Convert ``wav_path`` block by block to raw float32 LE plus zeros; return (rate Hz, channels, frames)."""
    frames = 0
    with sf.SoundFile(str(wav_path)) as src, open(raw_path, "wb") as dst:
        for block in src.blocks(blocksize=_CONVERT_BLOCK_FRAMES, dtype="float32", always_2d=True):
            dst.write(block.astype("<f4", copy=False).tobytes())
            frames += len(block)
        dst.write(np.zeros((pad_frames, src.channels), dtype="<f4").tobytes())
        return int(src.samplerate), int(src.channels), frames


def make_virtual_capture(
    wav_path: Path | str,
    tmp_dir: Path | str,
    *,
    pad_s: float = 2.0,
    device: str = DEVICE_NAME,
    base_env: dict[str, str] | None = None,
) -> VirtualCapture:
    """Write a virtual ALSA capture device that plays ``wav_path``; return its env and details.

    Args:
        wav_path: any file soundfile reads; played at its own rate and channel count.
        tmp_dir: where the raw audio and the ALSA config are written.
        pad_s: seconds of silence after the audio (see the module docstring on EOF).
        device: PCM name; letters, digits and underscores only.
        base_env: environment to extend (default: a copy of ``os.environ``).
    """
    if not device.replace("_", "").isalnum():
        raise ValueError(f"device must be letters, digits and underscores, got {device!r}")
    tmp = Path(tmp_dir)
    tmp.mkdir(parents=True, exist_ok=True)
    raw_path = (tmp / f"{device}.f32").resolve()
    probe = sf.info(str(wav_path))
    pad_frames = max(0, round(pad_s * probe.samplerate))
    rate, channels, frames = _write_raw_float32(Path(wav_path), raw_path, pad_frames)
    config_path = (tmp / f"{device}.asoundrc").resolve()
    config_path.write_text(
        _CONFIG_TEMPLATE.format(
            name=device, infile=raw_path, rate=rate, channels=channels,
            infile_comment=f"{Path(wav_path).name} ({rate} Hz, {channels} ch) as float32",
        )
    )
    env = dict(os.environ if base_env is None else base_env)
    env["ALSA_CONFIG_PATH"] = f"{system_alsa_conf()}:{config_path}"
    return VirtualCapture(env, device, rate, channels, frames, pad_frames, raw_path, config_path)


def run_python(
    code: str, env: dict[str, str], args: Sequence[str] = (), timeout_s: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (with ``sys.argv[1:] == args``) in a fresh interpreter with ``env``.

    A fresh process is what makes PortAudio see the virtual device. The repository root is
    put on PYTHONPATH. Raises AssertionError with the child's stdout/stderr if it exits non-zero.
    """
    repo_root = Path(__file__).resolve().parents[1]
    env = dict(env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(repo_root), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, cwd=repo_root, capture_output=True, text=True, timeout=timeout_s
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"child exited with {proc.returncode}, expected 0\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def _portaudio_problem() -> str | None:
    """Why PortAudio cannot be used here, or None if it loads."""
    try:
        import sounddevice  # noqa: F401
    except OSError as exc:
        return f"PortAudio library unavailable ({exc}); install libportaudio2 to run microphone tests"
    return None


needs_portaudio = pytest.mark.skipif(_portaudio_problem() is not None, reason=str(_portaudio_problem()))
