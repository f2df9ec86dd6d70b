"""Log-mel filterbanks: a pure function and a thin module holding the window and filterbank."""

from __future__ import annotations

import torch
import torchaudio

from streamseq.features.config import FeatureConfig


def mel_filterbank(cfg: FeatureConfig) -> torch.Tensor:
    """HTK mel filterbank, shape ``(n_fft // 2 + 1, n_mels)``."""
    return torchaudio.functional.melscale_fbanks(
        cfg.n_fft // 2 + 1, cfg.f_min, cfg.f_max, cfg.n_mels, cfg.sample_rate
    )


def frames_for(num_samples: int, cfg: FeatureConfig) -> int:
    """Frames a signal of ``num_samples`` samples (at ``cfg.sample_rate``) gives: ceil(N / hop)."""
    return -(-num_samples // cfg.hop_length)


def log_mel_padded(
    padded: torch.Tensor, cfg: FeatureConfig, window: torch.Tensor, fbank: torch.Tensor
) -> torch.Tensor:
    """Log-mel of every complete window in an already padded signal.

    Args:
        padded: ``(S,)`` samples whose first ``cfg.context`` samples are the past context.
        window: ``(win_length,)`` analysis window. fbank: ``(n_fft // 2 + 1, n_mels)``.
    Returns:
        ``(T, n_mels)`` with ``T = (S - context) // hop`` frames.
    """
    count = (padded.numel() - cfg.context) // cfg.hop_length
    if count <= 0:
        return padded.new_zeros(0, cfg.n_mels)
    frames = padded[: cfg.context + count * cfg.hop_length].unfold(0, cfg.win_length, cfg.hop_length)
    spectrum = torch.fft.rfft(frames * window, n=cfg.n_fft)  # (T, n_fft // 2 + 1)
    power = spectrum.real.square() + spectrum.imag.square()
    return torch.log(power @ fbank + cfg.eps)  # (T, n_mels)


def log_mel(wave: torch.Tensor, cfg: FeatureConfig = FeatureConfig()) -> torch.Tensor:
    """Offline log-mel frames of a mono 16 kHz ``(N,)`` signal -> ``(ceil(N / hop), n_mels)``."""
    window = torch.hann_window(cfg.win_length, periodic=True)
    tail = frames_for(wave.numel(), cfg) * cfg.hop_length - wave.numel()
    padded = torch.nn.functional.pad(wave.float(), (cfg.context, tail))
    return log_mel_padded(padded, cfg, window, mel_filterbank(cfg))
