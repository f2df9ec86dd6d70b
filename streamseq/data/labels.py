"""Frame-level speech labels computed from a *clean* (dry, noise-free) utterance.

Grid: 10 ms hops without overlap. At 16 kHz frame ``t`` covers samples
``[160 t, 160 (t + 1))``; a signal of ``N`` samples has ``T = ceil(N / 160)`` frames (the last
frame may be partial and is measured over the samples it has).

Rule, applied in this order:

1. Frame energy ``E[t] = 10 log10(mean(x[frame t] ** 2) + 1e-12)`` in dB relative to full scale
   (a full-scale square wave is 0 dB, a full-scale sine -3 dB).
2. A frame is speech when ``E[t] > max(E.max() - rel_db, floor_db, noise)``: within ``rel_db``
   (35 dB) of the utterance's loudest frame, above the absolute floor (``floor_db``, -60 dB),
   and ``noise_margin_db`` (10 dB) above the recording's own noise floor, estimated as the 5th
   percentile of ``E`` (``noise`` is capped at ``E.max() - 20 dB``, so a recording that is
   speech from end to end keeps its loud part). The noise term only matters for recordings
   with an audible floor (hiss or room tone less than 35 dB under the speech, common in real
   recordings); TTS output and clean prompts have digital or near-digital silence.
3. Non-speech gaps shorter than ``min_gap_s`` (100 ms) with speech on both sides become speech
   (pauses between words/plosive closures are not "silence" for VAD).
4. Speech islands shorter than ``min_speech_s`` (30 ms) are dropped (clicks, breaths).

Labels are therefore a property of the dry speech only; mixing noise, reverberation or gain
afterwards never changes them.
"""

from __future__ import annotations

import math

import numpy as np

from streamseq.features import FeatureConfig

__all__ = [
    "HOP_S",
    "frame_hop",
    "num_frames",
    "frame_energy_db",
    "close_gaps",
    "drop_short",
    "speech_labels",
    "frames_to_samples",
]

_GRID = FeatureConfig()  # labels share the features' frame grid
HOP_S = _GRID.frame_shift_s  # label hop in seconds (10 ms)
_FRAMES_PER_S = _GRID.sample_rate // _GRID.hop_length  # 100


def frame_hop(sr: int) -> int:
    """Samples per 10 ms label frame at sample rate ``sr`` (160 at 16 kHz)."""
    if sr <= 0 or sr % _FRAMES_PER_S:
        raise ValueError(f"sample rate must be a positive multiple of {_FRAMES_PER_S} Hz, got {sr}")
    return sr // _FRAMES_PER_S


def num_frames(n_samples: int, sr: int = _GRID.sample_rate) -> int:
    """Number of label frames ``T = ceil(n_samples / hop)`` for a signal of ``n_samples``."""
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    return math.ceil(n_samples / frame_hop(sr))


def frame_energy_db(x: np.ndarray, sr: int = _GRID.sample_rate) -> np.ndarray:
    """Per-frame mean-square energy in dBFS, shape ``(T,)``; partial last frame uses its own length."""
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"expected a mono 1-D signal, got shape {x.shape}")
    hop = frame_hop(sr)
    n = x.shape[0]
    t = num_frames(n, sr)
    sq = np.zeros(t * hop, dtype=np.float64)
    sq[:n] = np.square(x, dtype=np.float64)
    counts = np.full(t, hop, dtype=np.float64)
    if t and n % hop:
        counts[-1] = n % hop
    return 10.0 * np.log10(sq.reshape(t, hop).sum(axis=1) / counts + 1e-12)


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run-length encode a boolean mask: (starts, lengths, values)."""
    if mask.size == 0:
        e = np.zeros(0, dtype=np.int64)
        return e, e, np.zeros(0, dtype=bool)
    change = np.flatnonzero(np.diff(mask.astype(np.int8))) + 1
    starts = np.concatenate(([0], change))
    lengths = np.diff(np.concatenate((starts, [mask.size])))
    return starts, lengths, mask[starts].astype(bool)


def close_gaps(mask: np.ndarray, max_gap: int) -> np.ndarray:
    """Fill False runs shorter than ``max_gap`` frames that have True on both sides."""
    out = np.asarray(mask, dtype=bool).copy()
    starts, lengths, values = _runs(out)
    for i, (s, n, v) in enumerate(zip(starts, lengths, values, strict=True)):
        if not v and 0 < i < len(starts) - 1 and n < max_gap:
            out[s : s + n] = True
    return out


def drop_short(mask: np.ndarray, min_len: int) -> np.ndarray:
    """Clear True runs shorter than ``min_len`` frames."""
    out = np.asarray(mask, dtype=bool).copy()
    starts, lengths, values = _runs(out)
    for s, n, v in zip(starts, lengths, values, strict=True):
        if v and n < min_len:
            out[s : s + n] = False
    return out


def speech_labels(
    clean: np.ndarray,
    sr: int = _GRID.sample_rate,
    *,
    rel_db: float = 35.0,
    floor_db: float = -60.0,
    noise_margin_db: float = 10.0,
    min_gap_s: float = 0.100,
    min_speech_s: float = 0.030,
) -> np.ndarray:
    """Speech/non-speech labels (uint8 0/1, shape ``(ceil(N / hop),)``) for a clean mono signal.

    ``clean``: dry speech, shape ``(N,)`` samples, float in [-1, 1]. See the module docstring for
    the rule; ``min_gap_s``/``min_speech_s`` are in seconds, converted to whole 10 ms frames.
    """
    energy = frame_energy_db(clean, sr)
    if energy.size == 0:
        return np.zeros(0, dtype=np.uint8)
    peak = float(energy.max())
    noise = min(float(np.percentile(energy, 5)) + noise_margin_db, peak - 20.0)
    threshold = max(peak - rel_db, floor_db, noise)
    mask = energy > threshold
    mask = close_gaps(mask, int(round(min_gap_s / HOP_S)))
    mask = drop_short(mask, int(round(min_speech_s / HOP_S)))
    return mask.astype(np.uint8)


def frames_to_samples(labels: np.ndarray, n_samples: int, sr: int = _GRID.sample_rate) -> np.ndarray:
    """Expand frame labels ``(T,)`` to a boolean per-sample mask ``(n_samples,)``."""
    labels = np.asarray(labels)
    hop = frame_hop(sr)
    if labels.shape != (num_frames(n_samples, sr),):
        raise ValueError(
            f"labels shape {labels.shape} does not match {n_samples} samples "
            f"(expected ({num_frames(n_samples, sr)},))"
        )
    return np.repeat(labels.astype(bool), hop)[:n_samples]
