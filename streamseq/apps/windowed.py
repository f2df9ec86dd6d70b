"""Bounded-memory processing of long inputs with a bidirectional model.

A bidirectional model needs its whole input before it can emit anything, so
:class:`~streamseq.streaming.BufferedProcessor` buffers the features of the whole utterance:
16 KB per second at 40 mel bins, 115 MB for two hours -- plus the GRU's activations, several
times that. :class:`WindowedProcessor` bounds this by running the model over windows.

Windows (times in frames of the model's hop, 10 ms for the shipped models; W = window,
X = context, S = W - 2X the stride)::

    features   |---------------------------------------------------------------->
    window 0   [ core 0 (S)        | X ]
    window 1              [ X | core 1 (S)        | X ]
    window 2                                 [ X | core 2 (S)        | X ]

Window k runs the model over frames ``[k S - X, (k + 1) S + X)`` (clipped to the input) and
keeps only the outputs of its core ``[k S, (k + 1) S)``; the X context frames on each side are
computed and discarded, so every kept output saw at least X frames (5 s by default) of audio
on both sides, or the edge of the input. The cores tile the input exactly once. An input
shorter than ``S + X`` frames (55 s by default) is one window: outputs equal those of
``BufferedProcessor`` exactly.

What is buffered: the log-mel frames of one window (at most W frames) plus the frames of the
chunk just accepted; at 40 bins and W = 60 s that is 60 * 100 * 40 * 4 B = 0.96 MB. The
frontend (shared with every other path) carries only its leftover samples. Outputs of a core
come out once its right context has arrived, i.e. with a latency of about S + X frames.
"""

from __future__ import annotations

import numpy as np
import torch

from streamseq.features.frontend import StreamingFrontend
from streamseq.models.recurrent import FrameModel
from streamseq.streaming import FrameOutputs


class WindowedProcessor:
    """Windowed whole-input processing for any model; same ``accept``/``finish`` as a Session.

    Args:
        model: a loaded model (bidirectional or not).
        window_s: the most audio, in seconds, the model sees in one call (W).
        context_s: seconds of discarded context on each side of a window's core (X);
            ``2 * context_s < window_s`` is required.
    """

    def __init__(self, model: FrameModel, window_s: float = 60.0, context_s: float = 5.0) -> None:
        shift = model.feature_config.frame_shift_s
        self.window, self.context = round(window_s / shift), round(context_s / shift)
        if self.context < 0 or self.window - 2 * self.context < 1:
            raise ValueError(
                "expected 0 <= 2 * context_s < window_s; received "
                f"window_s={window_s}, context_s={context_s}"
            )
        self.stride = self.window - 2 * self.context
        self.model = model
        self.frontend = StreamingFrontend(model.feature_config)
        self.reset()

    @property
    def frame_shift_s(self) -> float:
        return self.model.feature_config.frame_shift_s

    @property
    def buffered_frames(self) -> int:
        """Feature frames held right now (at most ``window`` + one accepted chunk)."""
        return int(self._frames.shape[0])

    def reset(self) -> None:
        """Forget the current input."""
        self.frontend.reset()
        self._frames = torch.zeros(0, self.model.feature_config.n_mels)  # (n, F)
        self._first = 0  # absolute index of self._frames[0]
        self._next = 0  # first frame whose output has not been returned

    def _end(self) -> int:
        return self._first + self._frames.shape[0]

    @torch.inference_mode()
    def _run(self, core_end: int) -> FrameOutputs:
        lo = max(0, self._next - self.context)
        hi = min(self._end(), core_end + self.context)
        window = self._frames[lo - self._first : hi - self._first]  # (<= W, F)
        values = self.model.activate(self.model(window[None])[0])  # (<= W, C)
        out = FrameOutputs(self._next, values[self._next - lo : core_end - lo].numpy(), self.frame_shift_s)
        self._next = core_end
        keep_from = max(0, self._next - self.context)
        self._frames = self._frames[keep_from - self._first :]
        self._first = keep_from
        return out

    def _drain(self, final: bool) -> FrameOutputs:
        """Run every window whose core and right context are buffered (at the end: the rest)."""
        parts = []
        while self._end() >= self._next + self.stride + self.context:
            parts.append(self._run(self._next + self.stride))
        if final and self._next < self._end():  # the last core: < S + X frames, window < W
            parts.append(self._run(self._end()))
        if parts:
            return FrameOutputs.concat(parts)
        return FrameOutputs.empty(self._next, self.model.config.n_outputs, self.frame_shift_s)

    def accept(self, samples: np.ndarray | torch.Tensor, *, sample_rate: int) -> FrameOutputs:
        """Feed ``(n,)`` or ``(n, channels)`` samples at ``sample_rate`` Hz; return completed cores' outputs."""
        self._frames = torch.cat([self._frames, self.frontend.accept(samples, sample_rate=sample_rate)])
        return self._drain(final=False)

    def finish(self) -> FrameOutputs:
        """End of input: return every remaining output, then reset."""
        self._frames = torch.cat([self._frames, self.frontend.flush()])
        out = self._drain(final=True)
        self.reset()
        return out
