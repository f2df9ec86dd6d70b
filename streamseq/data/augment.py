"""Channel effects that real recordings have and synthetic mixes lack (16 kHz mono float32).

Each function takes the signal and a ``numpy`` Generator and returns a new array of the same
length, plus a small dict describing what it did (for the clip's ``meta``). Labels never
change: every effect here keeps the timing of the signal (the codec round trip is re-aligned).

* :func:`band_limit` - content of a lower-rate recording (8 or 11.025 kHz round trip),
* :func:`random_eq` - 1-3 peaking filters (+-9 dB) and a bass/treble tilt (+-6 dB),
* :func:`codec_roundtrip` - GSM, Opus or MP3 at a low bit rate through ``ffmpeg``,
* :func:`clip_and_offset` - hard clipping after overdrive, and DC offset.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from streamseq.debian import locate

__all__ = ["band_limit", "random_eq", "codec_roundtrip", "clip_and_offset", "CODECS"]

SR = 16000
#: ffmpeg (encoder, file suffix, bit rate, sample rate) for each codec of :func:`codec_roundtrip`.
CODECS = {
    "gsm": ("libgsm", ".gsm", None, 8000),
    "opus": ("libopus", ".opus", "12k", 16000),
    "mp3": ("libmp3lame", ".mp3", "24k", 16000),
}


def _filtered(x: np.ndarray, fn) -> np.ndarray:
    """Apply torchaudio filter ``fn`` (which clamps to [-1, 1]) at a safe level, then restore it."""
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak == 0.0:
        return x.astype(np.float32)
    scale = 0.25 / peak
    y = fn(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64) * scale))
    return (y.numpy() / scale).astype(np.float32)


def band_limit(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """Round trip through 8 kHz or 11.025 kHz: the spectrum of a lower-rate recording."""
    rate = int(rng.choice([8000, 11025]))
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
    y = AF.resample(AF.resample(t, SR, rate), rate, SR)[: x.size]
    out = np.zeros(x.size, dtype=np.float32)
    out[: y.shape[0]] = y.numpy()
    return out, {"band_limit_hz": rate}


def random_eq(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """1-3 peaking filters (100-6000 Hz, +-9 dB, Q 0.5-2) and a bass/treble tilt (+-6 dB)."""
    bands = [(float(np.exp(rng.uniform(np.log(100), np.log(6000)))), float(rng.uniform(-9, 9)),
              float(rng.uniform(0.5, 2.0))) for _ in range(int(rng.integers(1, 4)))]
    bass, treble = float(rng.uniform(-6, 6)), float(rng.uniform(-6, 6))

    def chain(t: torch.Tensor) -> torch.Tensor:
        for f, g, q in bands:
            t = AF.equalizer_biquad(t, SR, f, g, q)
        return AF.treble_biquad(AF.bass_biquad(t, SR, bass), SR, treble)

    return _filtered(x, chain), {"eq": [[round(f), round(g, 1), round(q, 2)] for f, g, q in bands],
                                 "tilt_db": [round(bass, 1), round(treble, 1)]}


def _align(reference: np.ndarray, y: np.ndarray, max_lag: int = 4096) -> np.ndarray:
    """``y`` shifted by the lag that best matches ``reference`` (codec delay), cut/padded to its length."""
    n = reference.size
    y = np.concatenate([y, np.zeros(max(0, n + max_lag - y.size), np.float32)])
    probe = slice(0, min(n, 5 * SR))
    ref = reference[probe].astype(np.float64)
    best, best_lag = -np.inf, 0
    size = 1 << int(np.ceil(np.log2(ref.size + max_lag + 1)))
    corr = np.fft.irfft(np.fft.rfft(y[: ref.size + max_lag], size) * np.conj(np.fft.rfft(ref, size)), size)
    lags = corr[: max_lag + 1]
    if lags.size:
        best_lag = int(np.argmax(lags))
        best = lags[best_lag]
    return y[best_lag : best_lag + n] if np.isfinite(best) else y[:n]


def codec_roundtrip(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """Encode with a low-bit-rate codec and decode again through ``ffmpeg`` (re-aligned to ``x``).

    Without ffmpeg (part of ``scripts/setup.sh --train``) this raises ``MissingSystemFileError``.
    """
    exe = str(locate("ffmpeg"))  # MissingSystemFileError (a FileNotFoundError) names the package and the fix
    name = str(rng.choice(sorted(CODECS)))
    encoder, suffix, bitrate, rate = CODECS[name]
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    scale = 0.5 / peak if peak > 0 else 1.0
    with tempfile.TemporaryDirectory(prefix="streamseq-codec-") as tmp:
        src, enc, dec = Path(tmp) / "in.wav", Path(tmp) / f"enc{suffix}", Path(tmp) / "out.wav"
        sf.write(src, x * scale, SR, subtype="FLOAT")
        quiet = [exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-threads", "1"]
        cmd = [*quiet, "-i", str(src), "-ar", str(rate), "-ac", "1", "-c:a", encoder]
        subprocess.run([*cmd, *(["-b:a", bitrate] if bitrate else []), str(enc)], check=True, capture_output=True)
        subprocess.run([*quiet, "-i", str(enc), "-ar", str(SR), "-ac", "1", "-c:a", "pcm_f32le", str(dec)],
                       check=True, capture_output=True)
        y, _ = sf.read(dec, dtype="float32", always_2d=False)
    return (_align(x * scale, y) / scale).astype(np.float32), {"codec": name}


def clip_and_offset(x: np.ndarray, rng: np.random.Generator, clipping: bool, dc: bool
                    ) -> tuple[np.ndarray, dict[str, Any]]:
    """Overdrive by 3-20 dB into hard clipping at full scale, and/or add a DC offset of up to 5 %."""
    meta: dict[str, Any] = {}
    y = x.astype(np.float32)
    if clipping:
        drive = float(rng.uniform(3, 20))
        y = np.clip(y * np.float32(10 ** (drive / 20) / max(float(np.max(np.abs(y))), 1e-9)), -1.0, 1.0)
        meta["clipping_db"] = round(drive, 1)
    if dc:
        offset = float(rng.uniform(-0.05, 0.05))
        y = np.clip(y + np.float32(offset), -1.0, 1.0)
        meta["dc_offset"] = round(offset, 4)
    return y.astype(np.float32), meta
