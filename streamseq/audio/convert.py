"""Validation and conversion of raw sample arrays at the library boundary.

Samples enter streamseq as ``(N,)`` mono or ``(N, C)`` channels-last arrays (the layout
soundfile and sounddevice use). Everything is checked here once, so the layers above can
assume finite float32 mono.
"""

from __future__ import annotations

import math

import numpy as np
import torch

MAX_CHANNELS = 64
_INT_SCALES = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2147483648.0}


def validate_sample_rate(sample_rate: object, *, what: str = "sample_rate") -> int:
    """Return ``sample_rate`` as a positive ``int`` or raise ``ValueError``."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer, float)):
        raise ValueError(f"{what} must be a positive integer in Hz; received {sample_rate!r}")
    if float(sample_rate) != int(sample_rate) or int(sample_rate) <= 0:
        raise ValueError(f"{what} must be a positive integer in Hz; received {sample_rate!r}")
    return int(sample_rate)


def to_mono_float32(samples: np.ndarray | torch.Tensor, *, what: str = "samples") -> np.ndarray:
    """Validate ``samples`` and return them as a finite float32 mono ``(N,)`` array.

    Accepts float16/32/64 in [-1, 1] (not enforced) and int16/int32 PCM (scaled to [-1, 1)).
    ``(N, C)`` input is downmixed by averaging the channels.

    Raises:
        ValueError: empty input, more than two dimensions, an unsupported dtype, a layout that
            looks channels-first, or NaN/inf samples. The message names what was expected and
            what was received.
    """
    if isinstance(samples, torch.Tensor):
        samples = samples.detach().cpu().numpy()
    if (type(samples) is np.ndarray and samples.dtype == np.float32 and samples.ndim == 1 and samples.size
            and math.isfinite(samples.sum()) and samples.flags.c_contiguous):
        return samples  # the common live case (float32 mono blocks), checked in three cheap steps
    if not isinstance(samples, np.ndarray):
        raise ValueError(f"{what} must be a numpy array or torch tensor; received {type(samples).__name__}")
    if samples.ndim not in (1, 2):
        raise ValueError(
            f"{what} must be 1-D (samples,) or 2-D (samples, channels); received shape {samples.shape}"
        )
    if samples.size == 0:
        raise ValueError(f"{what} is empty (shape {samples.shape}); expected at least one sample")
    if samples.ndim == 2 and samples.shape[1] > MAX_CHANNELS:
        raise ValueError(
            f"{what} has shape {samples.shape}: expected (samples, channels) with at most "
            f"{MAX_CHANNELS} channels. Did you pass (channels, samples)? Transpose it."
        )
    dtype = samples.dtype
    if dtype in _INT_SCALES:
        samples = samples.astype(np.float32) / _INT_SCALES[dtype]
    elif np.issubdtype(dtype, np.floating):
        samples = samples.astype(np.float32, copy=False)
    else:
        raise ValueError(
            f"{what} has dtype {dtype}; expected float16/32/64 in [-1, 1] or int16/int32 PCM"
        )
    if not np.isfinite(samples.sum()) and not np.isfinite(samples).all():  # cheap check first
        bad = int((~np.isfinite(samples)).sum())
        raise ValueError(f"{what} contains {bad} NaN or infinite value(s); expected finite samples")
    if samples.ndim == 2:
        samples = samples.mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(samples)
