"""Chunk-invariant resampling with torchaudio's windowed-sinc filter, at any pair of rates.

``torchaudio.functional.resample`` computes each output sample as a windowed sinc (Hann
window, 6 zero crossings, ``rolloff=0.99``) over the input around it. Both resamplers here
compute that same sum incrementally, keeping only the input the next outputs still need, so
any chunking of the input yields exactly the output of one pass (to float tolerance):

* :class:`StreamingResampler` runs torchaudio's own polyphase convolution. Its kernel holds
  ``new x (orig + 2 * width)`` taps for the rates' ratio reduced to ``orig:new``, and it emits
  in blocks of ``orig`` input samples: small for every common rate (8000, 11025, 16000,
  22050, 32000, 44100, 48000, 96000 ... 384000 Hz, whose ratios to 16 kHz reduce to terms of
  at most :data:`MAX_POLYPHASE_TERM`), gigabytes and one-second blocks for rates like
  16001 Hz (16001:16000).
* :class:`SincResampler` serves every other ratio (:func:`resampler_for` chooses): it
  evaluates the filter at each output's exact position from a table of ``new x taps``
  weights (one row per output phase, shared by all streams), so the rate is exact, memory is
  bounded (to 16 kHz: 1.9 MB of weights at 16001 Hz, 5 MB at 48001 Hz, 38 MB at 383999 Hz)
  and each output waits for only ``taps // 2`` input samples past its own time.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torchaudio.functional.functional import _get_sinc_resample_kernel

MAX_POLYPHASE_TERM = 640  # largest reduced-ratio term run by torchaudio's kernel: 11025 Hz -> 441:640
ZERO_CROSSINGS = 6  # torchaudio's lowpass_filter_width
ROLLOFF = 0.99  # torchaudio's default: the cutoff as a fraction of the lower Nyquist rate
BLOCK_OUTPUTS = 2048  # outputs per gather in SincResampler: bounds its working memory


class StreamingResampler:
    """Resample a mono stream from ``orig_rate`` to ``new_rate`` Hz with torchaudio's polyphase kernel.

    ``accept(x)`` returns the output samples that are complete so far; ``flush()`` returns the
    rest at end of input. Concatenated, they equal
    ``torchaudio.functional.resample(whole, orig_rate, new_rate)``. Meant for ratios whose
    reduced terms are small (see :func:`resampler_for`).
    """

    def __init__(self, orig_rate: int, new_rate: int) -> None:
        self.orig_rate, self.new_rate = int(orig_rate), int(new_rate)
        self.identity = self.orig_rate == self.new_rate
        gcd = math.gcd(self.orig_rate, self.new_rate)
        self._orig, self._new = self.orig_rate // gcd, self.new_rate // gcd
        if not self.identity:
            # kernel: (new, 1, 2 * width + orig); each conv step consumes `orig` input samples
            self._kernel, self._width = _get_sinc_resample_kernel(
                self.orig_rate, self.new_rate, gcd, dtype=torch.float64
            )  # float64: chunked and one-pass sums agree to float32 precision
        self.reset()

    @property
    def filter_size(self) -> int:
        """Filter coefficients held: ``new x (orig + 2 * width)`` (0 for equal rates)."""
        return 0 if self.identity else self._kernel.numel()

    @property
    def buffered(self) -> int:
        """Input samples held for the next outputs."""
        return self._buffer.numel()

    def reset(self) -> None:
        """Forget the stream: the next sample is the first one."""
        self._buffer = torch.zeros(self._width if not self.identity else 0, dtype=torch.float64)
        self._samples_in = 0
        self._samples_out = 0

    def _run(self, buffer: torch.Tensor) -> torch.Tensor:
        size = self._kernel.shape[-1]
        steps = (buffer.numel() - size) // self._orig + 1 if buffer.numel() >= size else 0
        if steps == 0:
            self._buffer = buffer
            return torch.zeros(0)
        used = buffer[: (steps - 1) * self._orig + size]
        out = torch.nn.functional.conv1d(used[None, None], self._kernel, stride=self._orig)
        self._buffer = buffer[steps * self._orig :]
        return out[0].transpose(0, 1).reshape(-1).float()  # (steps * new,)

    def accept(self, samples: torch.Tensor) -> torch.Tensor:
        """Take ``(n,)`` float32 samples at ``orig_rate``; return new ``(m,)`` samples at ``new_rate``."""
        self._samples_in += samples.numel()
        if self.identity:
            self._samples_out += samples.numel()
            return samples
        out = self._run(torch.cat([self._buffer, samples.double()]))
        self._samples_out += out.numel()
        return out

    def flush(self) -> torch.Tensor:
        """Return the remaining output at end of input and reset for a new stream."""
        if self.identity:
            self.reset()
            return torch.zeros(0)
        tail = self._run(torch.cat([self._buffer, torch.zeros(self._width + self._orig, dtype=torch.float64)]))
        total = math.ceil(self._new * self._samples_in / self._orig)
        out = tail[: max(0, total - self._samples_out)]
        self.reset()
        return out


@functools.lru_cache(maxsize=8)
def _phase_table(orig: int, new: int) -> tuple[np.ndarray, int]:
    """Weights ``(new, 2 * reach + 1)`` of torchaudio's filter for the reduced ratio ``orig:new``, and ``reach``.

    Output ``j`` sits at input position ``j * orig / new = c + p / new`` (``c`` an integer,
    ``p = j * orig mod new`` its phase) and is ``sum_m x[c + m] * table[p, m + reach]`` over
    ``|m| <= reach``: every input within the filter's ``ZERO_CROSSINGS`` zero crossings.
    """
    cutoff = ROLLOFF * min(orig, new)  # in the reduced units of torchaudio's kernel
    reach = math.ceil(ZERO_CROSSINGS * orig / cutoff)
    offsets = np.arange(-reach, reach + 1) - np.arange(new)[:, None] / new  # (new, taps): (i - j * orig / new)
    t = np.clip(offsets * (cutoff / orig), -ZERO_CROSSINGS, ZERO_CROSSINGS)  # in zero crossings
    window = np.cos(t * (math.pi / ZERO_CROSSINGS / 2)) ** 2
    table = np.sinc(t) * window * (cutoff / orig)
    table.flags.writeable = False  # shared by every stream at these rates
    return table, reach


class SincResampler:
    """Resample a mono stream at any ratio, chunk by chunk, with torchaudio's filter.

    Same interface and output as :class:`StreamingResampler` (``torchaudio.functional.resample``
    to float tolerance), for ratios whose polyphase kernel would be huge: the filter is applied
    at each output's exact position from a ``(new, taps)`` table, ``new`` the reduced output term.
    """

    def __init__(self, orig_rate: int, new_rate: int) -> None:
        self.orig_rate, self.new_rate = int(orig_rate), int(new_rate)
        self.identity = False
        gcd = math.gcd(self.orig_rate, self.new_rate)
        self._orig, self._new = self.orig_rate // gcd, self.new_rate // gcd
        self._table, self._reach = _phase_table(self._orig, self._new)
        self.reset()

    @property
    def filter_size(self) -> int:
        """Filter coefficients held (shared by all streams at these rates): ``new x taps``."""
        return self._table.size

    @property
    def buffered(self) -> int:
        """Input samples held for the next outputs: about ``taps`` (the filter's reach on both sides)."""
        return self._buffer.size

    def reset(self) -> None:
        """Forget the stream: the next sample is the first one."""
        self._buffer = np.zeros(self._reach, np.float64)  # the zeros before the stream
        self._first = -self._reach  # stream index of _buffer[0]
        self._samples_in = 0
        self._samples_out = 0

    def _run(self, end: int) -> np.ndarray:
        """Compute outputs ``_samples_out .. end - 1`` (all inputs they need are buffered)."""
        parts = []
        for start in range(self._samples_out, end, BLOCK_OUTPUTS):
            j = np.arange(start, min(start + BLOCK_OUTPUTS, end))
            centre, phase = np.divmod(j * self._orig, self._new)  # input position of output j: centre + phase / new
            rows = (centre - self._reach - self._first)[:, None] + np.arange(self._table.shape[1])
            parts.append((self._buffer[rows] * self._table[phase]).sum(axis=1).astype(np.float32))
        self._samples_out = max(end, self._samples_out)
        keep = self._samples_out * self._orig // self._new - self._reach  # first input the next output needs
        self._buffer, self._first = self._buffer[keep - self._first :], keep
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def _ready(self) -> int:
        """Outputs whose inputs are all buffered: those with ``centre + reach`` at most the last input."""
        last = self._first + self._buffer.size - 1 - self._reach  # the last centre that can be computed
        return -(-(last + 1) * self._new // self._orig) if last >= 0 else 0

    def accept(self, samples: torch.Tensor) -> torch.Tensor:
        """Take ``(n,)`` float32 samples at ``orig_rate``; return new ``(m,)`` samples at ``new_rate``."""
        self._samples_in += samples.numel()
        self._buffer = np.concatenate([self._buffer, samples.numpy()])
        return torch.from_numpy(self._run(self._ready()))

    def flush(self) -> torch.Tensor:
        """Return the remaining output at end of input and reset for a new stream."""
        self._buffer = np.concatenate([self._buffer, np.zeros(self._reach + 1)])
        total = -(-self._new * self._samples_in // self._orig)
        out = self._run(min(self._ready(), total))
        self.reset()
        return torch.from_numpy(out)


def resampler_for(orig_rate: int, new_rate: int) -> StreamingResampler | SincResampler:
    """The resampler for these rates: torchaudio's polyphase kernel when the ratio reduces to
    terms of at most :data:`MAX_POLYPHASE_TERM`, else :class:`SincResampler`. Both give the
    output of ``torchaudio.functional.resample`` (to float tolerance)."""
    gcd = math.gcd(int(orig_rate), int(new_rate))
    if max(orig_rate, new_rate) // gcd <= MAX_POLYPHASE_TERM:
        return StreamingResampler(orig_rate, new_rate)
    return SincResampler(orig_rate, new_rate)


def resample(samples: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Offline resampling of a mono ``(N,)`` signal: one pass of :func:`resampler_for`."""
    stream = resampler_for(orig_rate, new_rate)
    return torch.cat([stream.accept(samples), stream.flush()])
