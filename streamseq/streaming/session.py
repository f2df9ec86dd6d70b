"""Per-stream processing: a causal :class:`Session` and a :class:`BufferedProcessor`.

One loaded model serves any number of streams: all per-stream state (frontend leftovers,
GRU hidden state, frame counters) lives in the session, never in the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from streamseq.features.frontend import StreamingFrontend
from streamseq.models.gru import FrameModel


@dataclass
class FrameOutputs:
    """Outputs for consecutive frames ``start_frame .. start_frame + n - 1`` of a stream.

    ``values`` is ``(n, C)`` (speech probability in column 0 for VAD). Frame i covers
    ``[times[i], times[i] + frame_shift_s)`` seconds from the start of the stream.
    """

    start_frame: int
    values: np.ndarray
    frame_shift_s: float = 0.01

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def frames(self) -> np.ndarray:
        """Frame indices ``(n,)``."""
        return np.arange(self.start_frame, self.start_frame + len(self))

    @property
    def times(self) -> np.ndarray:
        """Start time of each frame in seconds ``(n,)``."""
        return self.frames * self.frame_shift_s

    @staticmethod
    def concat(parts: list["FrameOutputs"]) -> "FrameOutputs":
        """Join consecutive outputs of one stream into one."""
        if not parts:
            raise ValueError("nothing to concatenate")
        return FrameOutputs(parts[0].start_frame, np.concatenate([p.values for p in parts]), parts[0].frame_shift_s)


@dataclass
class StreamState:
    """What a session carries between chunks, besides the frontend's leftover samples."""

    hidden: torch.Tensor | None = None  # (L, 1, H), like nn.GRU's h
    frames_in: int = 0  # feature frames fed to the model
    frames_out: int = 0  # frames whose outputs were returned


def _check_streaming(model: FrameModel) -> None:
    if not getattr(model, "streaming", False):
        raise ValueError(
            f"a streaming Session needs a unidirectional model; this one is kind={model.config.kind!r}, "
            "which must see the whole utterance. Use BufferedProcessor(model) instead."
        )


class Session:
    """Causal per-stream processing with a unidirectional model.

    Each call returns the outputs of the frames that became final, with their times; with an
    output delay of k frames those lag the input by k * 10 ms. ``finish()`` flushes the end
    of the stream and starts a new one; ``reset()`` drops the current stream.
    """

    def __init__(self, model: FrameModel) -> None:
        _check_streaming(model)
        self.model = model
        self.frontend = StreamingFrontend(model.feature_config)
        self.state = StreamState()

    @property
    def frame_shift_s(self) -> float:
        return self.model.feature_config.frame_shift_s

    def reset(self) -> None:
        """Forget the current stream."""
        self.frontend.reset()
        self.state = StreamState()

    @torch.inference_mode()
    def _run(self, frames: torch.Tensor) -> FrameOutputs:
        state = self.state
        start = state.frames_out
        if frames.shape[0] == 0:
            return FrameOutputs(start, np.zeros((0, self.model.config.n_outputs), np.float32), self.frame_shift_s)
        logits, state.hidden = self.model.step(frames[None], state.hidden)  # (1, n, C)
        skip = max(0, self.model.config.output_delay - state.frames_in)
        state.frames_in += frames.shape[0]
        values = self.model.activate(logits[0, skip:]).numpy()
        state.frames_out += values.shape[0]
        return FrameOutputs(start, values, self.frame_shift_s)

    def accept(self, samples: np.ndarray | torch.Tensor, sample_rate: int = 16000) -> FrameOutputs:
        """Feed ``(n,)`` or ``(n, channels)`` samples at ``sample_rate`` Hz; return new outputs."""
        return self._run(self.frontend.accept(samples, sample_rate))

    def finish(self) -> FrameOutputs:
        """End of stream: return the outputs still pending, then reset for a new stream."""
        frames = self.frontend.flush()
        if self.state.frames_in + frames.shape[0] > 0:
            frames = torch.cat([frames, self.model.padding_frames(self.model.config.output_delay)])
        out = self._run(frames)
        self.reset()
        return out


class BufferedProcessor:
    """Whole-utterance processing for any model (required for bidirectional ones).

    ``accept`` only computes features and returns nothing (an empty :class:`FrameOutputs`);
    ``finish`` runs the model over every buffered frame and returns them all at once. Memory
    grows with the utterance: ``n_mels`` floats per 10 ms frame (16 KB per second at 40 bins).
    """

    def __init__(self, model: FrameModel) -> None:
        self.model = model
        self.frontend = StreamingFrontend(model.feature_config)
        self._frames: list[torch.Tensor] = []

    @property
    def frame_shift_s(self) -> float:
        return self.model.feature_config.frame_shift_s

    @property
    def buffered_frames(self) -> int:
        return sum(f.shape[0] for f in self._frames)

    def reset(self) -> None:
        self.frontend.reset()
        self._frames = []

    def _empty(self, start: int = 0) -> FrameOutputs:
        return FrameOutputs(start, np.zeros((0, self.model.config.n_outputs), np.float32), self.frame_shift_s)

    def accept(self, samples: np.ndarray | torch.Tensor, sample_rate: int = 16000) -> FrameOutputs:
        """Buffer a chunk; always returns no frames (the model needs the whole utterance)."""
        self._frames.append(self.frontend.accept(samples, sample_rate))
        return self._empty(self.buffered_frames)

    @torch.inference_mode()
    def finish(self) -> FrameOutputs:
        """End of utterance: run the model over all buffered frames and return every output."""
        frames = torch.cat(self._frames + [self.frontend.flush()])
        self.reset()
        if frames.shape[0] == 0:
            return self._empty()
        values = self.model.activate(self.model(frames[None])[0]).numpy()
        return FrameOutputs(0, values, self.frame_shift_s)
