"""Chunk-invariant resampling on top of torchaudio's windowed-sinc kernel.

``torchaudio.functional.resample`` is a strided convolution with a polyphase sinc kernel over
the zero-padded signal. :class:`StreamingResampler` runs that same convolution incrementally:
it keeps the samples the next output block still needs, so any chunking of the input yields
exactly the output of one ``torchaudio.functional.resample`` call over the whole signal
(to float tolerance). The anti-aliasing low-pass is torchaudio's (``rolloff=0.99``).
"""

from __future__ import annotations

import math

import torch
from torchaudio.functional.functional import _get_sinc_resample_kernel


class StreamingResampler:
    """Resample a mono stream from ``orig_rate`` to ``new_rate`` Hz, chunk by chunk.

    ``accept(x)`` returns the output samples that are complete so far; ``flush()`` returns the
    rest at end of input. Concatenated, they equal
    ``torchaudio.functional.resample(whole, orig_rate, new_rate)``.
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


def resample(samples: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Offline resampling of a mono ``(N,)`` signal: one pass of :class:`StreamingResampler`."""
    stream = StreamingResampler(orig_rate, new_rate)
    return torch.cat([stream.accept(samples), stream.flush()])
