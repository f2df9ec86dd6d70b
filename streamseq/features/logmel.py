"""Log-mel filterbanks as pure functions; :class:`StreamingFrontend` holds the window and filterbank."""

from __future__ import annotations

import torch
import torchaudio

from streamseq.features.config import FeatureConfig

BLOCK_ROWS = 1024  # windows per FFT pass: long inputs go in blocks that stay in cache (~5x faster)


def mel_filterbank(cfg: FeatureConfig) -> torch.Tensor:
    """HTK mel filterbank, shape ``(n_fft // 2 + 1, n_mels)``."""
    return torchaudio.functional.melscale_fbanks(
        cfg.n_fft // 2 + 1, cfg.f_min, cfg.f_max, cfg.n_mels, cfg.sample_rate
    )


def frames_for(num_samples: int, cfg: FeatureConfig) -> int:
    """Frames a signal of ``num_samples`` samples (at ``cfg.sample_rate``) gives: ceil(N / hop)."""
    return -(-num_samples // cfg.hop_length)


def power_filterbank(cfg: FeatureConfig) -> torch.Tensor:
    """The mel filterbank with each row repeated, ``(n_fft + 2, n_mels)``.

    Row ``2k`` weighs the squared real part of bin k and row ``2k + 1`` its squared imaginary
    part, so one matmul does both the ``re**2 + im**2`` sum and the mel projection.
    """
    return mel_filterbank(cfg).repeat_interleave(2, dim=0)


def log_mel_spectrum(spectrum: torch.Tensor, cfg: FeatureConfig, fbank: torch.Tensor) -> torch.Tensor:
    """Log-mel of spectra given as real and imaginary parts, ``(..., n_fft + 2) -> (..., n_mels)``.

    ``spectrum[..., 2k]`` and ``spectrum[..., 2k + 1]`` are the real and imaginary parts of bin k
    (``torch.view_as_real(rfft(...)).flatten(-2)``, or a complex64 numpy array viewed as float32).
    ``fbank`` is :func:`power_filterbank`'s ``(n_fft + 2, n_mels)``. Traceable (no FFT inside).
    """
    return torch.log(spectrum.square() @ fbank + cfg.eps)


def log_mel_windows(
    windows: torch.Tensor, cfg: FeatureConfig, window: torch.Tensor, fbank: torch.Tensor
) -> torch.Tensor:
    """Log-mel of analysis windows; rows are independent (they may come from many streams).

    Args:
        windows: ``(T, win_length)`` samples. window: ``(win_length,)`` analysis window.
        fbank: :func:`power_filterbank` ``(n_fft + 2, n_mels)``.
    Returns:
        ``(T, n_mels)``.
    """
    if windows.shape[0] <= BLOCK_ROWS:
        if windows.shape[0] == 0:
            return windows.new_zeros(0, cfg.n_mels)
        spectrum = torch.fft.rfft(windows * window, n=cfg.n_fft)  # (T, n_fft // 2 + 1) complex
        return log_mel_spectrum(torch.view_as_real(spectrum).flatten(1), cfg, fbank)  # (T, n_mels)
    out = windows.new_empty(windows.shape[0], cfg.n_mels)
    for start in range(0, windows.shape[0], BLOCK_ROWS):  # same values, in cache-sized passes
        out[start : start + BLOCK_ROWS] = log_mel_windows(windows[start : start + BLOCK_ROWS], cfg, window, fbank)
    return out


def analysis_windows(padded: torch.Tensor, cfg: FeatureConfig) -> torch.Tensor:
    """Every complete analysis window of an already padded signal, as a view.

    Args:
        padded: ``(S,)`` samples whose first ``cfg.context`` samples are the past context.
    Returns:
        ``(T, win_length)`` with ``T = max(0, (S - context) // hop)``; window t covers
        ``padded[t * hop : t * hop + win_length]``.
    """
    count = (padded.numel() - cfg.context) // cfg.hop_length
    if count <= 0:
        return padded.new_zeros(0, cfg.win_length)
    return padded[: cfg.context + count * cfg.hop_length].unfold(0, cfg.win_length, cfg.hop_length)


def log_mel(wave: torch.Tensor, cfg: FeatureConfig = FeatureConfig()) -> torch.Tensor:
    """Offline log-mel frames of a mono 16 kHz ``(N,)`` signal -> ``(ceil(N / hop), n_mels)``."""
    window = torch.hann_window(cfg.win_length, periodic=True)
    tail = frames_for(wave.numel(), cfg) * cfg.hop_length - wave.numel()
    padded = torch.nn.functional.pad(wave.float(), (cfg.context, tail))
    return log_mel_windows(analysis_windows(padded, cfg), cfg, window, power_filterbank(cfg))
