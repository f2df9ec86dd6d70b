"""The feature frontend: any-rate, any-channel samples in, log-mel frames out.

Two faces of one pipeline. :func:`compute_features` is the offline face (a whole signal);
:class:`StreamingFrontend` is the streaming face (chunks of any length, 1 sample to minutes).
Both run validate -> downmix -> resample to 16 kHz -> causal framing -> log-mel, and the
streaming face yields exactly the offline frames (to float tolerance) for any chunking.
"""

from __future__ import annotations

import numpy as np
import torch

from streamseq.audio.convert import to_mono_float32, validate_sample_rate
from streamseq.audio.resample import StreamingResampler
from streamseq.features.config import FeatureConfig
from streamseq.features.logmel import log_mel_padded, mel_filterbank


class StreamingFrontend:
    """Per-stream log-mel extractor. Holds only the leftover samples between chunks.

    ``accept(samples, sample_rate)`` returns the ``(n, n_mels)`` frames completed so far;
    ``flush()`` zero-pads the last partial hop and returns its frame, then resets.
    The input rate is fixed by the first chunk of a stream; call :meth:`reset` to change it.
    """

    def __init__(self, cfg: FeatureConfig = FeatureConfig()) -> None:
        self.cfg = cfg
        self._window = torch.hann_window(cfg.win_length, periodic=True)
        self._fbank = mel_filterbank(cfg)
        self.reset()

    def reset(self) -> None:
        """Start a new stream (any sample rate)."""
        self._resampler: StreamingResampler | None = None
        self._buffer = torch.zeros(self.cfg.context)
        self.frames_emitted = 0
        self.samples_seen = 0  # input samples, at the input rate

    @property
    def input_rate(self) -> int | None:
        """Sample rate of the current stream, or None before its first chunk."""
        return None if self._resampler is None else self._resampler.orig_rate

    def _bind_rate(self, sample_rate: object) -> StreamingResampler:
        rate = validate_sample_rate(sample_rate)
        if self._resampler is None:
            self._resampler = StreamingResampler(rate, self.cfg.sample_rate)
        elif rate != self._resampler.orig_rate:
            raise ValueError(
                f"this stream started at {self._resampler.orig_rate} Hz but a chunk came at "
                f"{rate} Hz; call reset() before changing the sample rate"
            )
        return self._resampler

    def _frames(self, new: torch.Tensor) -> torch.Tensor:
        buffer = torch.cat([self._buffer, new])
        frames = log_mel_padded(buffer, self.cfg, self._window, self._fbank)
        self._buffer = buffer[frames.shape[0] * self.cfg.hop_length :]
        self.frames_emitted += frames.shape[0]
        return frames

    def accept(self, samples: np.ndarray | torch.Tensor, sample_rate: int = 16000) -> torch.Tensor:
        """Consume a chunk ``(n,)`` or ``(n, channels)``; return new frames ``(m, n_mels)``."""
        resampler = self._bind_rate(sample_rate)
        mono = torch.from_numpy(to_mono_float32(samples))
        self.samples_seen += mono.numel()
        return self._frames(resampler.accept(mono))

    def flush(self) -> torch.Tensor:
        """End of input: return the remaining frames ``(m, n_mels)`` and reset."""
        tail = self._resampler.flush() if self._resampler is not None else torch.zeros(0)
        pending = self._buffer.numel() - self.cfg.context + tail.numel()
        pad = (-pending) % self.cfg.hop_length
        frames = self._frames(torch.cat([tail, torch.zeros(pad)]))
        self.reset()
        return frames


def compute_features(
    samples: np.ndarray | torch.Tensor, sample_rate: int = 16000, cfg: FeatureConfig = FeatureConfig()
) -> torch.Tensor:
    """Offline frames of a whole signal ``(N,)`` or ``(N, channels)`` -> ``(T, n_mels)``."""
    frontend = StreamingFrontend(cfg)
    return torch.cat([frontend.accept(samples, sample_rate), frontend.flush()])
