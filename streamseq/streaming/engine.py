"""Many streams over one model, stepped together: the multi-stream :class:`Engine`.

Dimension legend: B streams in a tick, n new frames, F log-mel bins, L layers, S state width
(:attr:`~streamseq.models.config.ModelConfig.state_size`: the hidden size, or twice it for an
LSTM, whose h and c travel packed in one array), C outputs per frame.

Streams join (:meth:`Engine.open`) and leave (:meth:`Engine.close`) at any moment and feed
chunks of any length and rate (:meth:`Engine.accept`). Each tick (:meth:`Engine.step`):

1. the analysis windows that all streams completed since the last tick go through ONE FFT
   (numpy's for a handful of frames, torch's for more);
2. the spectra go to the backend's spectrum step (power, mel, log, normalisation, recurrent
   layer, head and activation in one call; :class:`~streamseq.models.export.SpectrumStepModule`). The
   streams are sorted by their number of new frames ``n_i`` and stepped as a staircase:
   every stream over its first ``min(n_i)`` frames in one batched call, then those with more
   frames over the next ones, and so on: one call per distinct ``n_i`` (a single call when all
   streams send equal chunks). No stream ever steps on padding, so each hidden state is exactly
   the one a separate :class:`~streamseq.streaming.session.Session` would hold.

Each stream therefore gets the outputs it would get alone in a ``Session`` (to float
tolerance), with the same frame numbering and output delay. All per-stream state lives in a
small :class:`EngineStream`; the model holds none.

Threads: every method holds the engine's lock, so threads may open, feed, step and close
streams concurrently; their calls serialize (a tick runs alone). A stream closed by one thread
is unknown to the others: ``accept`` or ``close`` on it raises the ``KeyError`` of an unknown
stream id.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field

import numpy as np
import torch

from streamseq.features.frontend import StreamingFrontend
from streamseq.models.export import BACKENDS, StepFn, initial_state, onnx_available, step_function
from streamseq.models.recurrent import FrameModel
from streamseq.streaming.outputs import FrameOutputs

NUMPY_FFT_MAX_ROWS = 4  # up to this many frames per tick numpy's FFT is faster than torch's
BLOCK_ROWS = 1024  # frames per FFT pass when there are many


@dataclass
class EngineStream:
    """What the engine carries for one stream between ticks."""

    id: int
    frontend: StreamingFrontend  # leftover samples, resampler and input rate of this stream
    hidden: np.ndarray  # (L, S) recurrent state (any cell; see StreamingRNN.step), zeros at the start
    pending: list[np.ndarray] = field(default_factory=list)  # analysis windows (m, win_length) not yet stepped
    pending_frames: int = 0  # rows in pending: frames waiting for the next Engine.step
    frames_in: int = 0  # feature frames fed to the model
    frames_out: int = 0  # frames whose outputs were returned


def resolve_backend(backend: str) -> str:
    """``"auto"`` -> ``"onnx"`` when onnx and onnxruntime are installed, else ``"eager"``; others unchanged."""
    if backend == "auto":
        return "onnx" if onnx_available() else "eager"
    if backend not in BACKENDS:
        raise ValueError(f"backend must be 'auto' or one of {', '.join(BACKENDS)}; received {backend!r}")
    return backend


class Engine:
    """Batched streaming over one unidirectional model for any number of streams.

    Args:
        model: a streaming (``kind="uni"``) model in eval mode; it is shared, never modified.
        backend: how the step runs: ``"eager"`` (torch), ``"torchscript"``, ``"onnx"``
            (onnxruntime; fastest on CPU) or ``"auto"`` (onnx when onnx and onnxruntime are
            installed, else eager).
            :attr:`backend` tells which one was chosen.
        threads: intra-op threads of the onnx backend (default: ``torch.get_num_threads()``).

    Thread-safe: calls from several threads serialize on the engine's lock.

    Example::

        engine = Engine(model)
        a, b = engine.open(), engine.open()
        engine.accept(a, chunk_a, sample_rate=16000); engine.accept(b, chunk_b, sample_rate=48000)
        for stream_id, out in engine.step().items(): ...   # out.times, out.values[:, 0]
        tail = engine.close(a)                              # flush, stream a is gone
    """

    def __init__(self, model: FrameModel, backend: str = "auto", threads: int | None = None) -> None:
        if not getattr(model, "streaming", False):
            raise ValueError(
                f"streaming (Session, Engine) needs a unidirectional model; this one is kind={model.config.kind!r}, "
                "which must see the whole utterance. Use BufferedProcessor(model) instead."
            )
        self.model = model
        self.backend = resolve_backend(backend)
        self._step: StepFn = step_function(model, self.backend, threads, inputs="spectrum")
        delay = model.config.output_delay  # flushed with k raw frames, so a frames step too
        self._step_frames: StepFn | None = step_function(model, self.backend, threads) if delay else None
        self._padding = model.padding_frames(delay).numpy()  # (k, F)
        cfg = model.feature_config
        self._window = StreamingFrontend(cfg).window.numpy()  # (win_length,)
        self._n_fft = cfg.n_fft
        self._streams: dict[int, EngineStream] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()

    @property
    def frame_shift_s(self) -> float:
        return self.model.feature_config.frame_shift_s

    @property
    def streams(self) -> dict[int, EngineStream]:
        """The open streams by id (read them; change them only through the engine). A live view,
        not a snapshot: read it while no other thread is calling the engine."""
        return self._streams

    def __len__(self) -> int:
        return len(self._streams)

    def __contains__(self, stream_id: object) -> bool:
        return stream_id in self._streams

    def open(self) -> int:
        """Start a new stream (any sample rate, fixed by its first accepted chunk); return its id."""
        hidden = initial_state(self.model)[:, 0]  # (L, S)
        frontend = StreamingFrontend(self.model.feature_config)
        with self._lock:
            stream_id = next(self._ids)
            self._streams[stream_id] = EngineStream(stream_id, frontend, hidden)
        return stream_id

    def _get(self, stream_id: int) -> EngineStream:
        try:
            return self._streams[stream_id]
        except KeyError:
            open_now = len(self._streams)
            raise KeyError(f"no open stream {stream_id!r} ({open_now} open; closed ids are not reused)") from None

    def accept(
        self, stream_id: int, samples: np.ndarray | torch.Tensor, *, sample_rate: int,
        channels_first: bool | None = None,
    ) -> int:
        """Queue ``(n,)`` or ``(n, channels)`` samples of a stream; return its frames waiting for :meth:`step`.

        ``channels_first=True`` reads a 2-D chunk as ``(channels, n)``.

        Raises:
            ValueError: empty, NaN/inf, bad dtype, shape or ambiguous layout, bad rate or a rate
                change. The stream stays exactly as it was (its rate too, before its first chunk).
            KeyError: ``stream_id`` is not open (never opened, or closed or discarded).
        """
        with self._lock:
            stream = self._get(stream_id)
            windows = stream.frontend.accept_windows(samples, sample_rate=sample_rate, channels_first=channels_first)
            if windows.shape[0]:
                stream.pending.append(windows)
                stream.pending_frames += windows.shape[0]
            return stream.pending_frames

    def step(self) -> dict[int, FrameOutputs]:
        """Run every stream's waiting frames in batched calls; return the new outputs by stream id.

        Only streams with new outputs appear. With an output delay of k frames, a stream's first
        k frames give no output until more frames (or :meth:`close`) follow, as in a Session.
        """
        with self._lock:
            return self._tick()

    def _tick(self) -> dict[int, FrameOutputs]:
        ready = [s for s in self._streams.values() if s.pending_frames]
        if not ready:
            return {}
        if len(ready) > 1:
            ready.sort(key=lambda s: -s.pending_frames)  # most frames first (stable)
        counts = [s.pending_frames for s in ready]
        spectrum = self._spectrum([w for s in ready for w in s.pending])
        values = self._run(ready, counts, spectrum, self._step)
        outputs = {}
        for stream, count, v in zip(ready, counts, values, strict=True):
            stream.pending, stream.pending_frames = [], 0
            out = self._emit(stream, v[:count] if count < counts[0] else v)
            if out.values.shape[0]:
                outputs[stream.id] = out
        return outputs

    def close(self, stream_id: int) -> FrameOutputs:
        """End a stream: return every output not returned yet (the delay flushed); forget it."""
        with self._lock:
            return self._close(stream_id)

    def _close(self, stream_id: int) -> FrameOutputs:
        stream = self._get(stream_id)
        del self._streams[stream_id]
        windows = [w for w in stream.pending + [stream.frontend.flush_windows()] if w.shape[0]]
        count = sum(w.shape[0] for w in windows)
        stream.pending, stream.pending_frames = [], 0
        values = [np.zeros((0, self.model.config.n_outputs), np.float32)]
        if count:
            values.append(self._run([stream], [count], self._spectrum(windows), self._step)[0])
        if self._step_frames is not None and stream.frames_in + count > 0:
            values.append(self._run([stream], [len(self._padding)], self._padding, self._step_frames)[0])
        return self._emit(stream, np.concatenate(values))

    def discard(self, stream_id: int) -> None:
        """Forget a stream without computing its remaining outputs (a client that went away)."""
        with self._lock:
            self._get(stream_id)
            del self._streams[stream_id]

    def _spectrum(self, windows: list[np.ndarray]) -> np.ndarray:
        """Analysis windows of any streams -> ``(sum m, n_fft + 2)`` real and imaginary parts, one FFT.

        The windowed samples are written into a zero-padded ``(sum m, n_fft)`` array: an FFT of an
        already padded input costs about half that of ``rfft(n=n_fft)``, which pads a copy itself."""
        rows = sum(w.shape[0] for w in windows)
        x = np.zeros((rows, self._n_fft), np.float32)
        windowed = x[:, : self._window.size]
        if len(windows) == 1:
            np.multiply(windows[0], self._window, out=windowed)
        else:
            np.concatenate(windows, out=windowed)
            windowed *= self._window
        if rows <= NUMPY_FFT_MAX_ROWS:  # numpy's FFT: less overhead per call, more per row than torch's
            return np.fft.rfft(x).astype(np.complex64, copy=False).view(np.float32)
        frames = torch.from_numpy(x)  # needs no grad, so no inference_mode (entering it costs as much as a small FFT)
        parts = [torch.fft.rfft(frames[i : i + BLOCK_ROWS]) for i in range(0, rows, BLOCK_ROWS)]  # cache-sized passes
        spectrum = parts[0] if len(parts) == 1 else torch.cat(parts)
        return torch.view_as_real(spectrum).flatten(1).numpy()

    def _run(self, streams: list[EngineStream], counts: list[int], feats: np.ndarray, step: StepFn) -> np.ndarray:
        """Step ``streams`` (sorted by ``counts``, descending) over their rows of ``feats`` with ``step``.

        Returns ``values (B, max n, C)``; row i is valid up to ``counts[i]``. Updates hidden states.
        """
        batch, longest = len(streams), counts[0]
        if counts[-1] == longest:  # one step for all: rows are already (B, n) in stream order
            h = streams[0].hidden[:, None] if batch == 1 else np.stack([s.hidden for s in streams], axis=1)
            values, h = step(feats.reshape(batch, longest, -1), h)  # h: (L, B, S), a new array
        else:
            sizes = np.array(counts)
            starts = np.cumsum(sizes) - sizes  # first row of each stream in feats
            h = np.stack([s.hidden for s in streams], axis=1)  # (L, B, S)
            values = np.empty((batch, longest, self.model.config.n_outputs), np.float32)
            done = 0
            for upto in np.unique(sizes).tolist():  # staircase: streams with >= upto frames step done..upto
                m = int(np.count_nonzero(sizes >= upto))  # they are the first m
                rows = (starts[:m, None] + np.arange(done, upto)).ravel()
                x = feats.take(rows, axis=0).reshape(m, upto - done, -1)  # (m, upto - done, D)
                v, h_m = step(x, np.ascontiguousarray(h[:, :m]))
                values[:m, done:upto] = v
                h[:, :m] = h_m
                done = upto
        for i, stream in enumerate(streams):
            stream.hidden = h[:, i]  # a view of this tick's state array, never written again
        return values

    def _emit(self, stream: EngineStream, values: np.ndarray) -> FrameOutputs:
        """Account for ``values (n, C)`` just computed for ``stream``; drop the delay's warm-up."""
        skip = self.model.config.output_delay - stream.frames_in
        stream.frames_in += values.shape[0]
        if skip > 0:
            values = values[skip:]
        start = stream.frames_out
        stream.frames_out = start + values.shape[0]
        return FrameOutputs(start, values, self.frame_shift_s)
