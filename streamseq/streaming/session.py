"""Per-stream processing: a causal :class:`Session` and a :class:`BufferedProcessor`.

One loaded model serves any number of streams: all per-stream state (frontend leftovers,
recurrent state, frame counters) lives in the session, never in the model. A ``Session`` is
one stream of an :class:`~streamseq.streaming.engine.Engine`, so a single session and a
thousand batched streams run the very same code.

Threads: every method of a ``Session`` or ``BufferedProcessor`` holds that object's lock, so
calls from several threads serialize; chunks are taken in the order their calls get the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import torch

from streamseq.features.frontend import StreamingFrontend
from streamseq.models.recurrent import FrameModel
from streamseq.streaming.engine import Engine, EngineStream
from streamseq.streaming.outputs import FrameOutputs


class Session:
    """Causal per-stream processing with a unidirectional model.

    Each call returns the outputs of the frames that became final, with their times; with an
    output delay of k frames those lag the input by k frames (``k * frame_shift_s`` seconds).
    ``finish()`` flushes the end of the stream and starts a new one; ``reset()`` drops the
    current stream.

    Thread-safe: each call holds the session's lock, so concurrent ``accept``, ``finish`` and
    ``reset`` calls run one after another, each complete (a ``finish`` racing an ``accept``
    ends the stream either before or after that chunk, never during it).

    Args:
        model: a unidirectional model (a bidirectional one fails here, at construction).
        backend: how the model's step runs: ``"auto"`` (default: ``"onnx"`` when onnx and
            onnxruntime are installed, about 3x faster for small chunks; else ``"eager"``),
            ``"eager"`` (torch), ``"onnx"`` or ``"torchscript"``. The onnx step is exported
            once per model and shared by all its sessions.
    """

    def __init__(self, model: FrameModel, backend: str = "auto") -> None:
        self._engine = Engine(model, backend, threads=1)
        self._id = self._engine.open()
        self._lock = threading.Lock()

    @property
    def model(self) -> FrameModel:
        return self._engine.model

    @property
    def state(self) -> EngineStream:
        """This stream's state: frontend leftovers, hidden ``(L, S)`` (see ``EngineStream``), frame counters."""
        with self._lock:
            return self._engine.streams[self._id]

    @property
    def frame_shift_s(self) -> float:
        return self._engine.frame_shift_s

    def reset(self) -> None:
        """Forget the current stream."""
        with self._lock:
            self._engine.discard(self._id)
            self._id = self._engine.open()

    def accept(
        self, samples: np.ndarray | torch.Tensor, *, sample_rate: int, channels_first: bool | None = None
    ) -> FrameOutputs:
        """Feed ``(n,)`` or ``(n, channels)`` samples at ``sample_rate`` Hz; return new outputs.

        ``channels_first=True`` reads a 2-D chunk as ``(channels, n)``; a 2-D chunk that could be
        either layout must say which. A ``ValueError`` (bad samples or rate) leaves the stream
        as it was.
        """
        with self._lock:
            self._engine.accept(self._id, samples, sample_rate=sample_rate, channels_first=channels_first)
            out = self._engine.step().get(self._id)
            if out is None:
                frames_out = self._engine.streams[self._id].frames_out
                out = FrameOutputs.empty(frames_out, self.model.config.n_outputs, self.frame_shift_s)
            return out

    def finish(self) -> FrameOutputs:
        """End of stream: return the outputs still pending, then reset for a new stream."""
        with self._lock:
            out = self._engine.close(self._id)
            self._id = self._engine.open()
            return out


class BufferedProcessor:
    """Whole-utterance processing for any model (required for bidirectional ones).

    ``accept`` only computes features and returns nothing (an empty :class:`FrameOutputs`);
    ``finish`` runs the model over every buffered frame and returns them all at once. Memory
    grows with the utterance: ``n_mels`` float32 per frame (16 KB per second at 40 bins and
    10 ms frames). Thread-safe like :class:`Session`: calls serialize on the processor's lock.
    """

    def __init__(self, model: FrameModel) -> None:
        self.model = model
        self.frontend = StreamingFrontend(model.feature_config)
        self._frames: list[torch.Tensor] = []
        self._lock = threading.Lock()

    @property
    def frame_shift_s(self) -> float:
        return self.model.feature_config.frame_shift_s

    @property
    def buffered_frames(self) -> int:
        return sum(f.shape[0] for f in self._frames)

    def reset(self) -> None:
        """Forget the current utterance."""
        with self._lock:
            self._reset()

    def _reset(self) -> None:
        self.frontend.reset()
        self._frames = []

    def accept(
        self, samples: np.ndarray | torch.Tensor, *, sample_rate: int, channels_first: bool | None = None
    ) -> FrameOutputs:
        """Buffer a chunk; always returns no frames (the model needs the whole utterance)."""
        with self._lock:
            self._frames.append(self.frontend.accept(samples, sample_rate=sample_rate, channels_first=channels_first))
            return FrameOutputs.empty(self.buffered_frames, self.model.config.n_outputs, self.frame_shift_s)

    def finish(self) -> FrameOutputs:
        """End of utterance: run the model over all buffered frames and return every output."""
        return finish_together([self])[0]

    def _take(self) -> torch.Tensor:
        """Every buffered frame ``(T, F)``, the frontend flushed; the processor starts a new utterance."""
        with self._lock:
            frames = torch.cat(self._frames + [self.frontend.flush()])
            self._reset()
        return frames


@torch.inference_mode()
def finish_together(processors: Sequence[BufferedProcessor]) -> list[FrameOutputs]:
    """:meth:`BufferedProcessor.finish` of several processors of one model in one padded batch (one
    model call, far cheaper per frame than one call each): the same outputs, to float tolerance."""
    if not processors:
        return []
    model = processors[0].model
    if any(p.model is not model for p in processors):
        raise ValueError("finish_together needs processors of one model; received processors of different models")
    frames = [p._take() for p in processors]
    shift, n_outputs = model.feature_config.frame_shift_s, model.config.n_outputs
    outputs = [FrameOutputs.empty(0, n_outputs, shift) for _ in frames]
    full = [i for i, f in enumerate(frames) if f.shape[0]]
    if full:
        lengths = torch.tensor([frames[i].shape[0] for i in full])
        batch = torch.nn.utils.rnn.pad_sequence([frames[i] for i in full], batch_first=True)
        values = model.activate(model(batch, lengths)).numpy()
        for row, i in enumerate(full):
            outputs[i] = FrameOutputs(0, values[row, : frames[i].shape[0]], shift)
    return outputs
