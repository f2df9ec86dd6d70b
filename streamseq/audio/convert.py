"""Validation and conversion of raw sample arrays at the library boundary.

Samples enter streamseq as ``(N,)`` mono or ``(N, C)`` channels-last arrays (the layout
soundfile and sounddevice use; ``(C, N)`` when the caller says ``channels_first=True``), at
:data:`MIN_SAMPLE_RATE` to :data:`MAX_SAMPLE_RATE` Hz. Everything is checked here once, so the
layers above can assume finite float32 mono.
"""

from __future__ import annotations

import math

import numpy as np
import torch

MAX_CHANNELS = 64
MAX_UNLABELLED_CHANNELS = 8  # more columns than rows and than this: (C, N) or (N, C) must be said
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 4000, 384000
FLOAT_SCALE_LIMIT = 2.0  # float samples beyond +-2 are PCM integers stored as floats, not [-1, 1] audio
_INT_SCALES = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2147483648.0}
_EXPECTED_DTYPES = "float16/bfloat16/float32/float64 in [-1, 1] or int16/int32 PCM"


def validate_sample_rate(sample_rate: object, *, what: str = "sample_rate") -> int:
    """Return ``sample_rate`` as an ``int`` in ``[MIN_SAMPLE_RATE, MAX_SAMPLE_RATE]`` or raise ``ValueError``."""
    rate = sample_rate
    if isinstance(rate, (float, np.floating)) and rate.is_integer():  # 16000.0; not NaN, inf or 16000.5
        rate = int(rate)
    if (not isinstance(rate, (int, np.integer)) or isinstance(rate, bool)
            or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE):
        raise ValueError(
            f"{what} must be a whole number of Hz from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE}; "
            f"received {sample_rate!r}"
        )
    return int(rate)


def looks_int16_scaled(mono: np.ndarray) -> bool:
    """Whether float samples go beyond ``+-FLOAT_SCALE_LIMIT``: PCM values never divided by 32768."""
    return mono.size > 0 and float(np.abs(mono).max()) > FLOAT_SCALE_LIMIT


def _channels_last(samples: np.ndarray, channels_first: bool | None, what: str) -> np.ndarray:
    """A 2-D chunk as ``(N, C)``; a layout that could be either reading must be named."""
    if channels_first:
        return samples.T
    rows, cols = samples.shape
    if channels_first is None and cols > rows and cols > MAX_UNLABELLED_CHANNELS:
        raise ValueError(
            f"{what} has shape {samples.shape}: as (samples, channels) that is {rows} samples of {cols} "
            f"channels; as (channels, samples), {cols} samples of {rows} channels. Pass "
            "channels_first=True for (channels, samples) or channels_first=False for (samples, channels)."
        )
    return samples


def _tensor_to_numpy(samples: torch.Tensor, what: str) -> np.ndarray:
    """A tensor's samples as a numpy array; bfloat16 (which numpy lacks) becomes float32, exactly."""
    samples = samples.detach().cpu()
    if samples.dtype == torch.bfloat16:
        samples = samples.float()
    try:
        return samples.numpy()
    except TypeError:  # a dtype numpy has no counterpart for: float8, quantized, ...
        raise ValueError(
            f"{what} has torch dtype {samples.dtype}; expected {_EXPECTED_DTYPES}. "
            "Convert it first, e.g. with tensor.float()."
        ) from None


def to_mono_float32(
    samples: np.ndarray | torch.Tensor, *, channels_first: bool | None = None, what: str = "samples"
) -> np.ndarray:
    """Validate ``samples`` and return them as a finite float32 mono ``(N,)`` array.

    Accepts float16/bfloat16/float32/float64 in [-1, 1] (not enforced; bfloat16 as a torch tensor
    or an ``ml_dtypes`` array) and int16/int32 PCM (scaled to [-1, 1)).
    2-D input is ``(N, C)``, or ``(C, N)`` with ``channels_first=True``, and is downmixed by
    averaging the channels. With ``channels_first=None`` (the default) a 2-D chunk with more
    columns than rows and than :data:`MAX_UNLABELLED_CHANNELS` is refused as ambiguous.

    Raises:
        ValueError: empty input, more than two dimensions, an unsupported dtype, an ambiguous
            layout or more than :data:`MAX_CHANNELS` channels, or NaN/inf samples. The message
            names what was expected and what was received.
    """
    if isinstance(samples, torch.Tensor):
        samples = _tensor_to_numpy(samples, what)
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
    if samples.ndim == 2:
        samples = _channels_last(samples, channels_first, what)
        if samples.shape[1] > MAX_CHANNELS:
            raise ValueError(
                f"{what} has {samples.shape[1]} channels (shape {samples.shape} read as (samples, channels)); "
                f"expected at most {MAX_CHANNELS}. Did you mean the other layout? Pass channels_first="
                f"{not channels_first}."
            )
    dtype = samples.dtype
    if dtype in _INT_SCALES:
        samples = samples.astype(np.float32) / _INT_SCALES[dtype]
    elif np.issubdtype(dtype, np.floating) or dtype.name == "bfloat16":  # bfloat16: ml_dtypes' numpy type
        samples = samples.astype(np.float32, copy=False)
    else:
        raise ValueError(f"{what} has dtype {dtype}; expected {_EXPECTED_DTYPES}")
    if not np.isfinite(samples.sum()) and not np.isfinite(samples).all():  # cheap check first
        bad = int((~np.isfinite(samples)).sum())
        raise ValueError(f"{what} contains {bad} NaN or infinite value(s); expected finite samples")
    if samples.ndim == 2:
        samples = samples.mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(samples)
