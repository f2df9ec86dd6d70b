"""The feature frontend: any-rate, any-channel samples in, log-mel frames out.

Two faces of one pipeline. :func:`compute_features` is the offline face (a whole signal);
:class:`StreamingFrontend` is the streaming face (chunks of any length, 1 sample to minutes).
Both run validate -> downmix -> resample to 16 kHz -> causal framing -> log-mel, and the
streaming face yields exactly the offline frames (to float tolerance) for any chunking.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import torch

from streamseq.audio.convert import FLOAT_SCALE_LIMIT, looks_int16_scaled, to_mono_float32, validate_sample_rate
from streamseq.audio.resample import SincResampler, StreamingResampler, resampler_for
from streamseq.features.config import FeatureConfig
from streamseq.features.logmel import log_mel_windows, power_filterbank


@functools.lru_cache(maxsize=8)
def _tables(cfg: FeatureConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Analysis window ``(win_length,)`` and power filterbank ``(n_fft + 2, n_mels)`` of ``cfg``."""
    return torch.hann_window(cfg.win_length, periodic=True), power_filterbank(cfg)


class StreamingFrontend:
    """Per-stream log-mel extractor. Holds only the leftover samples between chunks.

    ``accept(samples, sample_rate=rate)`` returns the ``(n, n_mels)`` frames completed so far;
    ``flush()`` zero-pads the last partial hop and returns its frame, then resets.
    The input rate is fixed by the first chunk accepted in a stream; call :meth:`reset` to
    change it. A chunk that is refused (``ValueError``) leaves the stream exactly as it was.
    Float chunks beyond +-2 (int16 values stored as floats) draw one warning per stream.

    ``accept_windows`` / ``flush_windows`` stop before the log-mel and return the raw analysis
    windows ``(m, win_length)`` (a float32 numpy view of the stream's samples: read it, never
    write it) instead; :meth:`log_mel` turns any stack of them (from many streams at once, in
    one FFT) into frames. ``accept`` is ``log_mel(accept_windows(...))``.
    """

    def __init__(self, cfg: FeatureConfig = FeatureConfig()) -> None:
        self.cfg = cfg
        self._window, self._fbank = _tables(cfg)  # shared by all frontends of one config, never written
        self.reset()

    def reset(self) -> None:
        """Start a new stream (any sample rate)."""
        self._resampler: StreamingResampler | SincResampler | None = None
        self._warned_scale = False
        self._buffer = np.zeros(self.cfg.context, np.float32)  # context + samples of the next frames
        self.frames_emitted = 0
        self.samples_seen = 0  # input samples, at the input rate

    @property
    def window(self) -> torch.Tensor:
        """The analysis window ``(win_length,)`` applied to each frame before its FFT (do not modify)."""
        return self._window

    @property
    def resampler(self) -> StreamingResampler | SincResampler | None:
        """This stream's resampler to ``cfg.sample_rate`` (see its ``filter_size`` and ``buffered``), or None."""
        return self._resampler

    @property
    def input_rate(self) -> int | None:
        """Sample rate of the current stream, or None before its first chunk."""
        return None if self._resampler is None else self._resampler.orig_rate

    def _check_rate(self, sample_rate: object) -> int:
        """``sample_rate`` as an int if this stream can take it (changes nothing)."""
        bound = self.input_rate
        if type(sample_rate) is int and sample_rate == bound:
            return sample_rate  # the usual case: the rate this stream was validated with
        rate = validate_sample_rate(sample_rate)
        if bound is not None and rate != bound:
            raise ValueError(
                f"this stream started at {bound} Hz but a chunk came at {rate} Hz; "
                "call reset() before changing the sample rate"
            )
        return rate

    def _check_scale(self, mono: np.ndarray) -> None:
        if not self._warned_scale and looks_int16_scaled(mono):
            self._warned_scale = True
            warnings.warn(
                f"samples reach {np.abs(mono).max():.0f}, beyond +-{FLOAT_SCALE_LIMIT:g}: float audio is "
                "expected in [-1, 1]. Divide int16 PCM stored as floats by 32768 (or pass the int16 array). "
                "Warned once per stream.",
                stacklevel=4,
            )

    def _windows(self, new: np.ndarray) -> np.ndarray:
        cfg = self.cfg
        buffer = np.concatenate([self._buffer, new])  # a new array: earlier windows stay valid
        count = max(0, (buffer.size - cfg.context) // cfg.hop_length)
        itemsize = buffer.itemsize
        windows = np.ndarray((count, cfg.win_length), np.float32, buffer, 0, (cfg.hop_length * itemsize, itemsize))
        self._buffer = buffer[count * cfg.hop_length :]
        self.frames_emitted += count
        return windows  # (m, win_length): window t is buffer[t * hop : t * hop + win_length]

    def log_mel(self, windows: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Analysis windows ``(m, win_length)`` (of any streams) -> log-mel frames ``(m, n_mels)``."""
        if isinstance(windows, np.ndarray):
            windows = torch.from_numpy(windows)
        return log_mel_windows(windows, self.cfg, self._window, self._fbank)

    def accept_windows(
        self, samples: np.ndarray | torch.Tensor, *, sample_rate: int, channels_first: bool | None = None
    ) -> np.ndarray:
        """Consume a chunk ``(n,)`` or ``(n, channels)``; return its new analysis windows ``(m, win_length)``.

        ``channels_first=True`` reads a 2-D chunk as ``(channels, n)`` (see
        :func:`~streamseq.audio.convert.to_mono_float32`). Everything is validated before the
        stream changes: a ``ValueError`` leaves it as it was.
        """
        rate = self._check_rate(sample_rate)
        mono = to_mono_float32(samples, channels_first=channels_first)
        if self._resampler is None:
            self._resampler = resampler_for(rate, self.cfg.sample_rate)
        self._check_scale(mono)
        self.samples_seen += mono.size
        if not self._resampler.identity:
            mono = self._resampler.accept(torch.from_numpy(mono)).numpy()
        return self._windows(mono)

    def flush_windows(self) -> np.ndarray:
        """End of input: return the remaining analysis windows ``(m, win_length)`` and reset."""
        tail = self._resampler.flush().numpy() if self._resampler is not None else np.zeros(0, np.float32)
        pending = self._buffer.size - self.cfg.context + tail.size
        pad = (-pending) % self.cfg.hop_length
        windows = self._windows(np.concatenate([tail, np.zeros(pad, np.float32)]))
        self.reset()
        return windows

    def accept(
        self, samples: np.ndarray | torch.Tensor, *, sample_rate: int, channels_first: bool | None = None
    ) -> torch.Tensor:
        """Consume a chunk ``(n,)`` or ``(n, channels)``; return new frames ``(m, n_mels)``."""
        return self.log_mel(self.accept_windows(samples, sample_rate=sample_rate, channels_first=channels_first))

    def flush(self) -> torch.Tensor:
        """End of input: return the remaining frames ``(m, n_mels)`` and reset."""
        return self.log_mel(self.flush_windows())


def compute_features(
    samples: np.ndarray | torch.Tensor, sample_rate: int = 16000, cfg: FeatureConfig = FeatureConfig()
) -> torch.Tensor:
    """Offline frames of a whole signal ``(N,)`` or ``(N, channels)`` -> ``(T, n_mels)``."""
    frontend = StreamingFrontend(cfg)
    return torch.cat([frontend.accept(samples, sample_rate=sample_rate), frontend.flush()])
