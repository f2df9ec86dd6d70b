"""Reading sound files block by block, with errors that name the file and the reason.

Anything libsndfile decodes is accepted (WAV, FLAC, OGG/Vorbis/Opus, MP3, AIFF, ...), at any
sample rate and channel count. Blocks are float32 ``(n, C)``, channels last, as soundfile
returns them; memory stays at one block whatever the length of the file::

    info = read_info("talk.flac")                  # header only
    for block in iter_blocks("talk.flac", 10.0):   # (n, C) float32, n <= 10 s of samples
        ...

Damaged input is reported as :class:`AudioFileError` (a ``ValueError``) whose message starts
with the path: missing, empty, not audio, no samples, a channel the file does not have, a
WAV whose data chunk is shorter than its header says, or a decoder that fails or stops early.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

__all__ = ["AUDIO_EXTENSIONS", "AudioFileError", "AudioInfo", "iter_blocks", "read_info"]

# Extensions looked for when a folder is searched (files named explicitly may have any name).
AUDIO_EXTENSIONS = frozenset({
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc",
    ".au", ".snd", ".caf", ".w64", ".rf64",
})
_PLACEHOLDER_SIZE = 0x7FFFFFFF  # streaming writers leave 0x7FFFFFFF / 0xFFFFFFFF in the header
_WAV_DATA = re.compile(r"^data : (\d+) \(should be (\d+)\)", re.MULTILINE)


class AudioFileError(ValueError):
    """A file that cannot be used as audio input; ``str()`` is ``"<path>: <reason>"``."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class AudioInfo:
    """What the header says. ``frames`` counts samples per channel (exact for PCM formats)."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        """Seconds, from the header."""
        return self.frames / self.sample_rate


def _libsndfile_reason(exc: Exception) -> str:
    text = str(exc)
    text = re.sub(r"^Error opening .*?: ", "", text)  # soundfile repeats the path
    return text.strip() or type(exc).__name__


def read_info(path: str | os.PathLike) -> AudioInfo:
    """Read and check the header of ``path``.

    Raises:
        AudioFileError: missing, a folder, empty, not decodable, no samples, a bad sample rate
            or channel count, or a WAV whose data chunk is shorter than its header declares.
    """
    p = Path(path)
    if not p.exists():
        raise AudioFileError(p, "no such file")
    if not p.is_file():
        raise AudioFileError(p, "not a regular file")
    if p.stat().st_size == 0:
        raise AudioFileError(p, "empty file (0 bytes)")
    try:
        info = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioFileError(p, f"not a readable audio file ({_libsndfile_reason(exc)})") from exc
    if info.samplerate <= 0 or info.channels <= 0:
        raise AudioFileError(p, f"invalid header: {info.samplerate} Hz, {info.channels} channel(s)")
    if info.frames <= 0:
        raise AudioFileError(p, f"contains no audio samples ({info.format} {info.subtype}, 0 frames)")
    for declared, actual in _WAV_DATA.findall(info.extra_info or ""):
        declared, actual = int(declared), int(actual)
        if actual < declared < _PLACEHOLDER_SIZE:
            raise AudioFileError(
                p, f"truncated: the header declares {declared} bytes of audio data but the file holds {actual}"
            )
    return AudioInfo(str(p), int(info.samplerate), int(info.channels), int(info.frames),
                     str(info.format), str(info.subtype))


def check_channel(info: AudioInfo, channel: int | None) -> None:
    """Raise :class:`AudioFileError` unless ``channel`` is None or a valid 0-based index."""
    if channel is None:
        return
    if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)):
        raise AudioFileError(info.path, f"channel must be an integer index; received {channel!r}")
    if not 0 <= channel < info.channels:
        valid = "0" if info.channels == 1 else f"0..{info.channels - 1}"
        raise AudioFileError(
            info.path, f"channel {channel} requested but the file has {info.channels} channel(s) (valid: {valid})"
        )


def iter_blocks(
    path: str | os.PathLike, block_s: float, channel: int | None = None, info: AudioInfo | None = None
) -> Iterator[np.ndarray]:
    """Yield the file as float32 blocks ``(n, C)`` of ``block_s`` seconds (the last may be shorter).

    ``channel`` (0-based) keeps one channel, so blocks are ``(n, 1)``; None keeps all ``C``.
    Pass ``info`` from :func:`read_info` to skip reading the header twice.

    Raises:
        AudioFileError: see :func:`read_info`; also a bad channel, a decoder error part-way
            (e.g. a truncated FLAC), or fewer samples than the header announces (truncated).
        ValueError: ``block_s`` not a positive number of seconds.
    """
    if not (isinstance(block_s, (int, float)) and math.isfinite(block_s) and block_s > 0):
        raise ValueError(f"block_s must be a positive number of seconds; received {block_s!r}")
    info = info if info is not None else read_info(path)
    check_channel(info, channel)
    size = max(1, round(block_s * info.sample_rate))
    done = 0
    try:
        with sf.SoundFile(str(path)) as f:
            while True:
                block = f.read(size, dtype="float32", always_2d=True)  # (n, C)
                if block.shape[0] == 0:
                    break
                done += block.shape[0]
                yield block if channel is None else block[:, channel : channel + 1]
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioFileError(
            path, f"decoding failed after {done / info.sample_rate:.2f} s ({_libsndfile_reason(exc)}); "
            "truncated or corrupt file?"
        ) from exc
    if done < info.frames:
        raise AudioFileError(
            path, f"truncated: the header announces {info.duration:.2f} s but only "
            f"{done / info.sample_rate:.2f} s could be decoded"
        )
