"""Recorded audio sources (Debian packages) and synthetic non-speech generators.

Everything here returns float32 mono at 16 kHz (``SR``). Durations are in seconds; array lengths
are ``round(duration_s * sr)`` samples.

Recordings used (and nothing else), each found where its Debian package installs it
(:mod:`streamseq.debian`):

* real speech: ``asterisk-core-sounds-en-wav`` prompts (8 kHz telephone-band, one professional
  voice). Non-speech files (``silence/``, beeps, tone prompts such as
  ``confbridge-join``) are excluded.
* music: ``asterisk-moh-opsound-wav`` (8 kHz music on hold).
* effects: ``sound-theme-freedesktop`` (``*.oga``), minus the ``audio-channel-*`` files, which
  are spoken words ("front left", ...).
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from streamseq.data.archives import read_member
from streamseq.data.render import RENDERED_SUFFIXES, SOUNDFONT_KEYS, rendered
from streamseq.debian import locate

__all__ = [
    "SR",
    "SourceFile",
    "real_speech_files",
    "music_files",
    "effect_files",
    "load_audio",
    "to_mono_16k",
    "NOISE_KINDS",
    "synthetic_noise",
    "white_noise",
    "pink_noise",
    "brown_noise",
    "hum",
    "clicks",
    "tones",
    "silence",
    "stable_bucket",
    "split_files",
]

SR = 16000

_ASTERISK_NON_SPEECH = {
    "beep", "beeperr", "ascending-2tone", "descending-2tone", "confbridge-join", "confbridge-leave"
}
_EFFECTS_SPOKEN_PREFIXES = ("audio-channel-",)


@dataclass(frozen=True)
class SourceFile:
    """One recording. ``group`` is the unit the train/valid split holds out (speaker/prompt set).

    ``member``: the file's name inside the zip archive ``path`` (None for a plain file).
    """

    path: Path
    group: str
    kind: str  # "speech" | "music" | "effects"
    member: str | None = None

    @property
    def name(self) -> str:
        return Path(self.member).stem if self.member else self.path.stem

    @property
    def key(self) -> str:
        """Stable identifier: ``path`` or ``path::member``."""
        return f"{self.path}::{self.member}" if self.member else str(self.path)


def real_speech_files() -> list[SourceFile]:
    """Asterisk English prompts, sorted by path.

    ``group`` is the sub-directory for ``digits/``, ``letters/`` ... and the first ``-``/``_``
    separated token of the stem at top level (``vm-*`` -> ``vm``), so related prompts are held
    out together. All prompts are read by the same person: groups separate recordings, not voices.
    """
    root = locate("asterisk-en")
    out = []
    for p in sorted(root.rglob("*.wav")):
        rel = p.relative_to(root)
        if rel.parts[0] == "silence" or p.stem in _ASTERISK_NON_SPEECH:
            continue
        if len(rel.parts) > 1:
            group = rel.parts[0]
        else:
            group = p.stem.replace("_", "-").split("-")[0]
        out.append(SourceFile(p, f"asterisk:{group}", "speech"))
    return out


def music_files() -> list[SourceFile]:
    """Music-on-hold recordings (each file is its own split group), sorted by path."""
    root = locate("asterisk-moh")
    return [SourceFile(p, f"music:{p.stem}", "music") for p in sorted(root.glob("*.wav"))]


def effect_files() -> list[SourceFile]:
    """freedesktop sound-theme effects without the spoken ones, sorted by path."""
    root = locate("freedesktop-sounds")
    return [
        SourceFile(p, f"effects:{p.stem}", "effects")
        for p in sorted(root.glob("*.oga"))
        if not p.stem.startswith(_EFFECTS_SPOKEN_PREFIXES)
    ]


def to_mono_16k(x: np.ndarray, sr: int, target_sr: int = SR) -> np.ndarray:
    """Downmix ``(N,)`` or ``(N, C)`` audio by channel mean and resample to ``target_sr``; float32."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    elif x.ndim != 1:
        raise ValueError(f"expected audio of shape (N,) or (N, C), got {x.shape}")
    if sr != target_sr and x.size:
        y = AF.resample(torch.from_numpy(np.ascontiguousarray(x)), int(sr), int(target_sr))
        x = y.numpy()
    return np.ascontiguousarray(x, dtype=np.float32)


def _open(source: Path | str | SourceFile) -> sf.SoundFile:
    path, member = (source.path, source.member) if isinstance(source, SourceFile) else (Path(source), None)
    name = member or path.name
    if name.lower().endswith(RENDERED_SUFFIXES):  # notes or patterns: rendered once, then read from the cache
        soundfont = SOUNDFONT_KEYS[stable_bucket("soundfont:" + name, len(SOUNDFONT_KEYS))]  # MIDI only
        return sf.SoundFile(str(rendered(path, member, sr=SR, soundfont=soundfont)))
    if member is not None:
        return sf.SoundFile(io.BytesIO(read_member(path, member)))
    return sf.SoundFile(str(path))


def load_audio(source: Path | str | SourceFile, sr: int = SR, max_s: float | None = None) -> np.ndarray:
    """Read a soundfile-readable file (or archive member) as float32 mono at ``sr`` Hz, ``(N,)``.

    MIDI files and tracker modules are read from their render (:func:`streamseq.data.render.rendered`:
    the first minute, one soundfont per MIDI piece picked by :func:`stable_bucket` of its name).

    With ``max_s``, a longer file gives only ``max_s`` seconds from an offset that depends on the
    file's name alone (the same excerpt every time); only that part is decoded.
    """
    with _open(source) as f:
        frames = f.frames
        if max_s is not None and frames > int(max_s * f.samplerate):
            take = int(max_s * f.samplerate)
            name = source.key if isinstance(source, SourceFile) else str(source)
            f.seek(stable_bucket("excerpt:" + name, 1 << 30) % (frames - take))
            frames = take
        x = f.read(frames, dtype="float32", always_2d=False)
        rate = f.samplerate
    return to_mono_16k(x, rate, sr)


# ----------------------------------------------------------------------------- synthetic noise


def _n(duration_s: float, sr: int) -> int:
    if duration_s < 0:
        raise ValueError(f"duration_s must be >= 0, got {duration_s}")
    return int(round(duration_s * sr))


def _rms_normalize(x: np.ndarray, rms: float = 0.1) -> np.ndarray:
    p = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    return (x * (rms / p) if p > 0 else x).astype(np.float32)


def _colored(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown), RMS 0.1."""
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1] if n > 1 else 1.0
    spec *= f ** (-exponent / 2.0)
    spec[0] = 0.0
    return _rms_normalize(np.fft.irfft(spec, n))


def white_noise(rng: np.random.Generator, duration_s: float, sr: int = SR) -> np.ndarray:
    """Gaussian white noise, RMS 0.1."""
    return _rms_normalize(rng.standard_normal(_n(duration_s, sr)))


def pink_noise(rng: np.random.Generator, duration_s: float, sr: int = SR) -> np.ndarray:
    """1/f noise, RMS 0.1."""
    return _colored(rng, _n(duration_s, sr), 1.0)


def brown_noise(rng: np.random.Generator, duration_s: float, sr: int = SR) -> np.ndarray:
    """1/f^2 (Brownian) noise without DC, RMS 0.1."""
    return _colored(rng, _n(duration_s, sr), 2.0)


def hum(rng: np.random.Generator, duration_s: float, sr: int = SR) -> np.ndarray:
    """Mains hum: 50 or 60 Hz (+-0.5 %) with up to 12 harmonics of random level, light noise."""
    n = _n(duration_s, sr)
    t = np.arange(n) / sr
    f0 = float(rng.choice([50.0, 60.0])) * (1.0 + rng.uniform(-0.005, 0.005))
    x = np.zeros(n)
    for k in range(1, int(rng.integers(3, 13)) + 1):
        amp = 10 ** (rng.uniform(-30, 0) / 20) / k ** rng.uniform(0.0, 1.0)
        x += amp * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
    x += 0.01 * rng.standard_normal(n)
    return _rms_normalize(x)


def clicks(rng: np.random.Generator, duration_s: float, sr: int = SR) -> np.ndarray:
    """Impulsive clicks/crackle: Poisson arrivals (0.5-20 /s), 0.2-5 ms decaying bursts."""
    n = _n(duration_s, sr)
    x = 1e-3 * rng.standard_normal(n)
    count = int(rng.poisson(rng.uniform(0.5, 20.0) * duration_s))
    for pos in rng.integers(0, max(n, 1), size=count):
        length = max(int(rng.uniform(0.0002, 0.005) * sr), 2)
        burst = rng.standard_normal(length) * np.exp(-np.arange(length) / (length / 4))
        end = min(n, pos + length)
        x[pos:end] += 10 ** (rng.uniform(-20, 0) / 20) * burst[: end - pos]
    return _rms_normalize(x)


def tones(rng: np.random.Generator, duration_s: float, sr: int = SR) -> np.ndarray:
    """Beeps and dual tones (DTMF-like): 0.05-1 s bursts at 300-3500 Hz with 0.05-1.5 s gaps."""
    n = _n(duration_s, sr)
    x = 1e-3 * rng.standard_normal(n)
    pos = int(rng.uniform(0, 0.5) * sr)
    while pos < n:
        length = int(rng.uniform(0.05, 1.0) * sr)
        t = np.arange(min(length, n - pos)) / sr
        freqs = rng.uniform(300, 3500, size=int(rng.integers(1, 3)))
        burst = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f in freqs)
        ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.005) if t.size else t
        x[pos : pos + t.size] += 10 ** (rng.uniform(-12, 0) / 20) * burst * ramp
        pos += length + int(rng.uniform(0.05, 1.5) * sr)
    return _rms_normalize(x)


def silence(rng: np.random.Generator, duration_s: float, sr: int = SR) -> np.ndarray:
    """Near-silence: white or pink noise at -80..-60 dBFS RMS (a quiet room/mic floor)."""
    gen = white_noise if rng.random() < 0.5 else pink_noise
    level = 10 ** (rng.uniform(-80, -60) / 20)
    return (gen(rng, duration_s, sr) * (level / 0.1)).astype(np.float32)


NOISE_KINDS: dict[str, Callable[[np.random.Generator, float, int], np.ndarray]] = {
    "white": white_noise,
    "pink": pink_noise,
    "brown": brown_noise,
    "hum": hum,
    "clicks": clicks,
    "tones": tones,
    "silence": silence,
}


def synthetic_noise(
    kind: str, rng: np.random.Generator, duration_s: float, sr: int = SR
) -> np.ndarray:
    """Generate ``kind`` (one of ``NOISE_KINDS``) as float32 ``(round(duration_s * sr),)``."""
    try:
        gen = NOISE_KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown noise kind {kind!r}; expected one of {sorted(NOISE_KINDS)}") from None
    return gen(rng, duration_s, sr)


def stable_bucket(key: str, buckets: int = 100) -> int:
    """Seed-independent hash bucket in ``[0, buckets)`` (crc32), used for held-out splits."""
    return zlib.crc32(key.encode("utf-8")) % buckets


def split_files(files: list[SourceFile], valid_fraction: float = 0.15) -> dict[str, list[SourceFile]]:
    """Hold out whole ``group``s worth about ``valid_fraction`` of the audio duration for "valid".

    Groups are visited in :func:`stable_bucket` order (seed independent) and taken while the held
    share is below ``valid_fraction`` and would stay under 1.6x of it. With two or more groups
    both splits are non-empty. Returns ``{"train": [...], "valid": [...]}`` in input order.
    """
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
    dur: dict[str, float] = {}
    for f in files:
        dur[f.group] = dur.get(f.group, 0.0) + sf.info(str(f.path)).duration
    total, held, valid = sum(dur.values()), 0.0, set[str]()
    for g in sorted(dur, key=lambda g: (stable_bucket(g, 1 << 30), g)):
        if held >= valid_fraction * total or len(valid) + 1 >= len(dur):
            break
        if not valid or held + dur[g] <= 1.6 * valid_fraction * total:
            valid.add(g)
            held += dur[g]
    return {"train": [f for f in files if f.group not in valid],
            "valid": [f for f in files if f.group in valid]}
