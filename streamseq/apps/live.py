"""Live VAD over a capture source: a streaming uni model next to a buffered bidirectional one.

Both models must be of one task that segments the stream (:class:`~streamseq.tasks.SegmentingTask`,
e.g. VAD); the task turns their outputs into per-frame speech scores and gives the Segmenter settings.
A task that decodes more than segments brings its live decoding (its ``live_decoding`` method,
:func:`task_decoding`; digits: the uni partial transcript and each utterance's final uni and bi
transcripts); its events (:class:`TaskEvent`) come in decision order among the others.

Data flow (the source's audio thread only queues blocks; everything here runs on one
processing thread)::

    source.read()               (n, C) float32 blocks at the device rate
      -> Session(uni)           outputs per 10 ms frame as soon as it is final -> task.scores: speech prob.
      -> Segmenter.push         "start" (provisional) and "end" (final) events
      -> ring of recent audio   on uni "start": a BufferedProcessor(bi) is fed from preroll_s
                                before the start boundary; on uni "end": bi.finish() gives the
                                bi frame decisions of the whole utterance at once

Times are *stream time*: seconds of audio consumed since the stream began. Blocks the source
dropped are not counted, so stream time matches a ``record_to`` file of the same run. A
decision's stream time is the audio consumed when it was made: ``(frame + k) * 10 ms`` for a
Segmenter event decided at ``frame`` by a uni model with output delay ``k``, and the end of the
block that carried the uni "end" event for the bi decisions. Latency = decision - boundary.
Wall-clock processing time is measured per block (``BlockUpdate.proc_s``). Blocks of tens of ms
run fastest with ``torch.set_num_threads(1)`` (what ``streamseq mic`` sets); this module leaves
that global setting alone.

    >>> pipeline = LivePipeline(load_model("vad-uni"), load_model("vad-bi"))
    >>> with MicrophoneSource(block_s=0.05) as mic:
    ...     summary = pipeline.run(mic, duration_s=10, on_event=print)
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

from streamseq.audio.convert import to_mono_float32, validate_sample_rate
from streamseq.audio.source import FileSource, MicrophoneSource
from streamseq.models.recurrent import FrameModel
from streamseq.streaming.session import BufferedProcessor, FrameOutputs, Session, finish_together
from streamseq.tasks import LiveDecodingTask, model_task, segmenting_task
from streamseq.tasks.vad.postprocess import Segment, SegmentEvent, Segmenter, SegmenterConfig, segments_from_probs

__all__ = ["BiDecision", "BlockUpdate", "LiveEvent", "LivePipeline", "LiveSummary", "SpeechStart", "TaskDecoding",
           "TaskEvent", "UniSegment", "task_decoding"]


@dataclass(frozen=True)
class BlockUpdate:
    """One processed block. ``probs`` ``(n,)``: uni speech probability of frames ``first_frame..``."""

    stream_s: float  # stream time at the end of the block
    first_frame: int
    probs: np.ndarray
    proc_s: float  # wall-clock seconds spent processing this block
    in_speech: bool  # a confirmed uni segment is open
    bi_buffered_s: float | None  # seconds of audio the bi model holds; None when not listening
    overflows: int  # source counters so far (PortAudio overflows, blocks dropped by the queue)
    dropped_blocks: int


@dataclass(frozen=True)
class SpeechStart:
    """Uni "start" event (provisional): speech began at ``start_s``, decided at ``decided_s``."""

    utterance: int
    start_s: float
    decided_s: float
    decision_frame: int

    @property
    def latency_s(self) -> float:
        return self.decided_s - self.start_s


@dataclass(frozen=True)
class UniSegment:
    """Uni "end" event: the final segment [start_s, end_s) (padded) and when each end was decided."""

    utterance: int
    start_s: float
    end_s: float
    mean_prob: float
    start_decided_s: float
    end_decided_s: float
    start_decision_frame: int
    end_decision_frame: int
    at_stream_end: bool = False  # closed because the stream ended, not by silence: no latency to measure

    @property
    def end_latency_s(self) -> float:
        """End-of-speech delay: stream seconds from the segment end to the decision that closed it."""
        return self.end_decided_s - self.end_s


@dataclass(frozen=True)
class BiDecision:
    """The bi model's frame decisions for one utterance, all made at ``decided_s``.

    ``times``/``probs`` ``(T,)``: frame start (stream s) and speech probability; ``segments`` from
    ``segments_from_probs`` over them, in stream time. ``compute_s`` is wall-clock model time.
    """

    utterance: int
    origin_s: float  # stream time of the first buffered sample
    times: np.ndarray
    probs: np.ndarray
    segments: list[Segment]
    utterance_start_s: float
    utterance_end_s: float  # the uni segment's end
    decided_s: float
    compute_s: float

    @property
    def wait_s(self) -> float:
        """Stream seconds from the end of the utterance to the bi decisions."""
        return self.decided_s - self.utterance_end_s

    @property
    def held_s(self) -> float:
        """Seconds of audio the bi model held before it could answer."""
        return self.decided_s - self.origin_s


@runtime_checkable
class TaskEvent(Protocol):
    """An event of a task's live decoding: a partial (``final`` False, uni only) or final ``text`` of
    utterance ``utterance`` (0: outside any utterance) by ``model`` ("uni" or "bi"), at ``decided_s``."""

    @property
    def model(self) -> str: ...

    @property
    def utterance(self) -> int: ...

    @property
    def text(self) -> str: ...

    @property
    def final(self) -> bool: ...

    @property
    def decided_s(self) -> float: ...

    def line(self) -> str:
        """The event as one line of text (the plain view's)."""
        ...


class TaskDecoding(Protocol):
    """A task's live decoding beside the segments, from its ``live_decoding(uni, bi, segmenter)``
    (:class:`~streamseq.tasks.base.LiveDecodingTask`). The pipeline calls it in stream order:

    * ``push(values (n, C), utterance, decided_s)``: the uni model's next outputs, cut at the segment
      decisions (``utterance``: the open one, or the next); ``decided_s(frames)``: stream time of a
      decision made once ``frames`` uni frames were seen;
    * ``close(utterance, decided_s, end_s, at_stream_end)``: the uni segment of ``utterance`` ended at
      ``end_s`` (s), decided at ``decided_s``;
    * ``bi(utterance, values (T, C), origin_s, decided_s, end_s, compute_s)``: the bi outputs of the
      utterance, the first frame at ``origin_s``;
    * ``finish(decided_s)``: the stream ended.

    Each returns its events; ``to_dict()`` gives what ``--json`` records.
    """

    def push(self, values: np.ndarray, utterance: int, decided_s: Callable[[int], float]) -> Sequence[TaskEvent]: ...

    def close(self, utterance: int, decided_s: float, end_s: float, at_stream_end: bool) -> Sequence[TaskEvent]: ...

    def bi(self, utterance: int, values: np.ndarray, origin_s: float, decided_s: float, end_s: float,
           compute_s: float) -> Sequence[TaskEvent]: ...

    def finish(self, decided_s: float) -> Sequence[TaskEvent]: ...

    def to_dict(self) -> dict[str, Any]: ...


def task_decoding(uni: FrameModel, bi: FrameModel | None, segmenter: SegmenterConfig) -> TaskDecoding | None:
    """The live decoding of ``uni``'s task, if it has one (a :class:`~streamseq.tasks.base.LiveDecodingTask`);
    None: segments only (VAD)."""
    task = model_task(uni, "the uni model")
    return task.live_decoding(uni, bi, segmenter) if isinstance(task, LiveDecodingTask) else None


LiveEvent = BlockUpdate | SpeechStart | UniSegment | BiDecision | TaskEvent
Source = MicrophoneSource | FileSource  # anything with read(timeout), active, sample_rate, overflows, dropped_blocks


@dataclass
class LiveSummary:
    """Totals of a session. Delays in stream seconds, ``*_proc_s`` and ``wall_s`` wall-clock."""

    stream_s: float = 0.0
    wall_s: float = 0.0
    blocks: int = 0  # blocks processed (not counting dropped ones)
    proc_s: float = 0.0
    max_block_proc_s: float = 0.0
    segments: int = 0
    speech_s: float = 0.0
    overflows: int = 0
    dropped_blocks: int = 0
    mean_uni_end_latency_s: float | None = None  # over segments closed by silence (not by the stream end)
    mean_bi_wait_s: float | None = None
    mean_uni_frame_delay_s: float | None = None  # block end - frame end, over all uni frames
    mean_bi_frame_delay_s: float | None = None  # decision - frame end, over all bi frames

    @property
    def rtf(self) -> float:
        """Real-time factor of processing: wall seconds of processing per stream second."""
        return self.proc_s / self.stream_s if self.stream_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return _rounded(asdict(self) | {"rtf": self.rtf})


@dataclass
class _Open:
    """The uni segment being spoken, and the bi buffer listening to it."""

    utterance: int
    start: SpeechStart
    bi: BufferedProcessor | None
    origin_sample: int


class LivePipeline:
    """Consumes audio blocks and produces :data:`LiveEvent` s; no UI, no threads of its own
    unless :meth:`start` is used.

    Args:
        uni: a streaming (``kind="uni"``) VAD model. bi: a bidirectional model, or None.
        segmenter: thresholds/durations for the uni Segmenter and the bi ``segments_from_probs``
            (None: the uni model's own, from its checkpoint's task config).
        preroll_s: audio before the uni start boundary that the bi model also gets.
        history_s: recent audio kept for that (must cover the start decision delay + preroll).
        session: the uni model's streaming state (None: a new ``Session(uni)``; ``streamseq serve``
            passes one backed by its shared Engine).
        defer_bi: leave each closed utterance's bi pass in :attr:`pending_bi` until
            :meth:`complete_bi` (``streamseq serve`` runs those of all its streams in one batch);
            False: run it at once.
        hook: called with each block before it is processed (tests use it to slow processing).
    """

    def __init__(
        self,
        uni: FrameModel,
        bi: FrameModel | None = None,
        *,
        segmenter: SegmenterConfig | None = None,
        preroll_s: float = 0.5,
        history_s: float = 2.0,
        session: Session | None = None,
        defer_bi: bool = False,
        hook: Callable[[np.ndarray], None] | None = None,
    ) -> None:
        if not 0 <= preroll_s <= history_s:
            raise ValueError(f"expected 0 <= preroll_s <= history_s, got preroll_s={preroll_s}, history_s={history_s}")
        self.uni_task = segmenting_task(uni, "the uni model", "the live pipeline")
        self.bi_task = None if bi is None else segmenting_task(bi, "the bi model", "the live pipeline")
        if bi is not None and bi.task != uni.task:
            raise ValueError(f"the uni model was trained for task {uni.task!r} but the bi model for {bi.task!r}; "
                             "pass two models of one task")
        self.uni, self.bi, self.hook, self.defer_bi = uni, bi, hook, defer_bi
        self.pending_bi: list[tuple[_Open, UniSegment]] = []  # closed utterances waiting for their bi pass
        self.session = Session(uni) if session is None else session  # Session raises for a non-streaming model
        self.shift = uni.feature_config.frame_shift_s
        self.segmenter_config = (self.uni_task.segmenter_config(uni) if segmenter is None
                                 else replace(segmenter, frame_shift_s=self.shift))
        self.segmenter = Segmenter(self.segmenter_config)
        self.decoding = task_decoding(uni, bi, self.segmenter_config)
        self.preroll_s, self.history_s = float(preroll_s), float(history_s)
        self.uni_segments: list[UniSegment] = []
        self.bi_decisions: list[BiDecision] = []
        self.sample_rate: int | None = None
        self.samples = 0  # stream samples consumed, at sample_rate
        self.overflows = self.dropped_blocks = 0
        self._history: deque[tuple[int, np.ndarray]] = deque()  # (first sample, block)
        self._open: _Open | None = None
        self._utterances = 0
        self._sum = LiveSummary()
        self._delays: list[float] = [0.0, 0.0, 0.0, 0.0]  # sum of uni frame delays, uni frames, same for bi (stream s)
        self._started: float | None = None  # time.monotonic() of run() or the first block
        self._ended: float | None = None
        self._finished = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    # ------------------------------------------------------------------ synchronous core
    @property
    def stream_s(self) -> float:
        return self.samples / self.sample_rate if self.sample_rate else 0.0

    @property
    def bi_buffered_s(self) -> float | None:
        """Seconds of audio the bi model holds now; None when it is not listening."""
        if self._open is None or self._open.bi is None or not self.sample_rate:
            return None
        return (self.samples - self._open.origin_sample) / self.sample_rate

    def accept(self, block: np.ndarray, sample_rate: int) -> list[LiveEvent]:
        """Process one ``(n, C)`` (or ``(n,)``) float32 block; return its events, the BlockUpdate last.

        A block or rate the frontend rejects (NaN samples, a bad shape or dtype, a NaN rate) raises
        ValueError before anything changes, so the stream can still be finished with what came before.
        """
        if self._finished:
            raise RuntimeError("this LivePipeline has finished; create a new one for a new stream")
        block = to_mono_float32(block, what="audio block")  # (n,)
        sample_rate = validate_sample_rate(sample_rate)
        if self.sample_rate is None:
            self.sample_rate = sample_rate
        elif sample_rate != self.sample_rate:
            raise ValueError(f"the stream started at {self.sample_rate} Hz but a block came at {sample_rate} Hz")
        t0 = time.perf_counter()
        if self._started is None:
            self._started = time.monotonic()
        if self.hook is not None:
            self.hook(block)
        self._history.append((self.samples, block))
        self.samples += len(block)
        keep_from = self.samples - self.history_s * self.sample_rate
        while self._history[0][0] + len(self._history[0][1]) < keep_from:
            self._history.popleft()
        if self._open is not None and self._open.bi is not None:
            self._open.bi.accept(block, sample_rate=self.sample_rate)
        out = self.session.accept(block, sample_rate=self.sample_rate)
        probs = self.uni_task.scores(self.uni, out.values)  # (n,)
        return self._consume(out, probs, self.segmenter.push(probs), t0)

    def finish(self) -> list[LiveEvent]:
        """End of stream: flush the uni model and Segmenter, close any open utterance."""
        if self._finished:
            return []
        t0 = time.perf_counter()
        self._finished = True
        out = self.session.finish()
        probs = self.uni_task.scores(self.uni, out.values)
        events = self.segmenter.push(probs) + self.segmenter.flush()
        result = self._consume(out, probs, events, t0, block=False)  # flush closes a confirmed open segment
        self._ended = time.monotonic()
        return result

    def _consume(
        self, out: FrameOutputs, probs: np.ndarray, seg_events: list[SegmentEvent], t0: float, block: bool = True
    ) -> list[LiveEvent]:
        events: list[LiveEvent] = []
        done = 0  # outputs of this call given to the task's decoding
        for ev in seg_events:
            if self.decoding is not None:  # its outputs up to the decision, then the decision
                cut = min(max(ev.frame - out.start_frame, done), len(out))
                events += self._decode(out.values[done:cut])
                done = cut
            events += self._on_segment_event(ev)
        if self.decoding is not None:
            events += self._decode(out.values[done:])
            if not block:  # the stream ended
                events += self.decoding.finish(self.stream_s)
        now = self.stream_s
        n = len(out)
        if n:  # the sum over its frames f of now - (f + 1) * shift
            self._delays[0] += n * now - self.shift * (n * (out.start_frame + 1) + n * (n - 1) / 2)
            self._delays[1] += n
        proc = time.perf_counter() - t0
        s = self._sum
        s.blocks += int(block)
        s.proc_s += proc
        s.max_block_proc_s = max(s.max_block_proc_s, proc)
        events.append(BlockUpdate(
            now, out.start_frame, probs.copy(), proc, self._open is not None,
            self.bi_buffered_s, self.overflows, self.dropped_blocks,
        ))
        return events

    def _decided_s(self, ev: SegmentEvent) -> float:
        """Stream time of a Segmenter decision: its frame plus the model's output delay (capped at the
        stream's end, where the delay is flushed with padding rather than waited for)."""
        return self._frames_decided_s(ev.frame)

    def _frames_decided_s(self, frames: int) -> float:
        """Stream time of a decision made once ``frames`` uni frames were seen (see :meth:`_decided_s`)."""
        return min((frames + self.uni.config.output_delay) * self.shift, self.stream_s)

    def _decode(self, values: np.ndarray) -> list[LiveEvent]:
        """The task's decoding of the next uni outputs ``(n, C)``, for the open utterance (or the next)."""
        assert self.decoding is not None
        if not len(values):
            return []
        utterance = self._open.utterance if self._open is not None else self._utterances + 1
        return list(self.decoding.push(values, utterance, self._frames_decided_s))

    def _on_segment_event(self, ev: SegmentEvent) -> list[LiveEvent]:
        if ev.kind == "start":
            self._utterances += 1
            start = SpeechStart(self._utterances, ev.time, self._decided_s(ev), ev.frame)
            self._open = _Open(self._utterances, start, None, 0)
            if self.bi is not None:
                self._open.bi, self._open.origin_sample = self._bi_from_history(ev.time)
            return [start]
        assert ev.segment is not None and self._open is not None
        opened, self._open = self._open, None
        seg = UniSegment(
            opened.utterance, ev.segment.start, ev.segment.end, ev.segment.mean_prob,
            opened.start.decided_s, self._decided_s(ev), opened.start.decision_frame, ev.frame, self._finished,
        )
        self.uni_segments.append(seg)
        events: list[LiveEvent] = [seg]
        if self.decoding is not None:
            events += self.decoding.close(seg.utterance, seg.end_decided_s, seg.end_s, seg.at_stream_end)
        if opened.bi is not None:
            self.pending_bi.append((opened, seg))
            if not self.defer_bi:
                t0 = time.perf_counter()
                outputs = finish_together(self.bi_processors())
                events += self.complete_bi(outputs, time.perf_counter() - t0)
        return events

    def bi_processors(self) -> list[BufferedProcessor]:
        """The bi buffers of :attr:`pending_bi`, in order, for :func:`finish_together`."""
        return [opened.bi for opened, _ in self.pending_bi if opened.bi is not None]

    def complete_bi(self, outputs: Sequence[FrameOutputs], compute_s: float) -> list[LiveEvent]:
        """The bi decisions (and the task's decoding of them) of :attr:`pending_bi`, given the bi outputs
        of :meth:`bi_processors` (``finish_together``) and the seconds that pass took."""
        if len(outputs) != len(self.pending_bi):
            raise ValueError(f"expected the bi outputs of {len(self.pending_bi)} pending utterances; "
                             f"received {len(outputs)}")
        pending, self.pending_bi = self.pending_bi, []
        events: list[LiveEvent] = []
        for (opened, seg), out in zip(pending, outputs, strict=True):
            events += self._bi_events(opened, seg, out, compute_s)
        return events

    def _bi_from_history(self, start_s: float) -> tuple[BufferedProcessor, int]:
        """A BufferedProcessor fed with the recent audio from ``preroll_s`` before ``start_s``."""
        assert self.bi is not None and self.sample_rate is not None
        origin = max(0, round((start_s - self.preroll_s) * self.sample_rate))
        origin = max(origin, self._history[0][0]) if self._history else self.samples
        bi = BufferedProcessor(self.bi)
        for first, block in self._history:
            part = block[max(0, origin - first):]
            if len(part):
                bi.accept(part, sample_rate=self.sample_rate)
        return bi, origin

    def _bi_decide(self, opened: _Open, seg: UniSegment, out: FrameOutputs, compute_s: float) -> BiDecision:
        """The bi model's decisions over the utterance, from its outputs ``out``."""
        assert self.bi is not None and self.bi_task is not None and self.sample_rate is not None
        probs = self.bi_task.scores(self.bi, out.values).astype(np.float64)
        origin_s = opened.origin_sample / self.sample_rate
        offset = round(origin_s / self.shift)
        segments = [
            Segment(s.start + origin_s, s.end + origin_s, s.mean_prob, s.start_frame + offset, s.end_frame + offset)
            for s in segments_from_probs(probs, self.segmenter_config)
        ]
        times = origin_s + np.arange(len(probs)) * self.shift
        decided = self.stream_s
        self._delays[2] += float(np.sum(decided - (times + self.shift)))
        self._delays[3] += len(probs)
        decision = BiDecision(
            opened.utterance, origin_s, times, probs, segments, seg.start_s, seg.end_s, decided, compute_s,
        )
        self.bi_decisions.append(decision)
        return decision

    def _bi_events(self, opened: _Open, seg: UniSegment, out: FrameOutputs, compute_s: float) -> list[LiveEvent]:
        """The bi decision of the utterance that ``seg`` closed, then the task's decoding of it."""
        decision = self._bi_decide(opened, seg, out, compute_s)
        events: list[LiveEvent] = [decision]
        if self.decoding is not None:
            events += self.decoding.bi(decision.utterance, out.values, decision.origin_s, decision.decided_s,
                                       decision.utterance_end_s, decision.compute_s)
        return events

    # ------------------------------------------------------------------ driving a source
    def run(
        self,
        source: Source,
        *,
        duration_s: float | None = None,
        on_event: Callable[[LiveEvent], None] | None = None,
        poll_s: float = 0.1,
    ) -> LiveSummary:
        """Read ``source`` until it ends, ``duration_s`` stream seconds, or :meth:`stop`; then finish.

        The source must be started. ``on_event`` gets every event on this thread. When reading or
        processing a block fails (a decoder error, NaN samples), the stream is finished all the
        same, so what came before stays in :meth:`summary` and :meth:`to_dict`; then the error is raised.
        """
        emit = on_event or (lambda e: None)
        if self._started is None:
            self._started = time.monotonic()
        try:
            self._read(source, duration_s, emit, poll_s)
        finally:
            for event in self.finish():
                emit(event)
        return self.summary()

    def _read(self, source: Source, duration_s: float | None, emit: Callable[[LiveEvent], None],
              poll_s: float) -> None:
        """Feed ``source``'s blocks to :meth:`accept` until it ends, ``duration_s`` or :meth:`stop`."""
        limit = None if duration_s is None else round(duration_s * source.sample_rate)
        while not self._stop.is_set() and (limit is None or self.samples < limit):
            block = source.read(timeout=poll_s)
            self.overflows, self.dropped_blocks = source.overflows, source.dropped_blocks
            if block is None:
                if source.active:
                    continue
                break
            if limit is not None:
                block = block[: limit - self.samples]
            for event in self.accept(block, source.sample_rate):
                emit(event)

    def start(self, source: Source, **kwargs: Any) -> threading.Thread:
        """:meth:`run` on a new processing thread; :meth:`join` re-raises its error."""

        def target() -> None:
            try:
                self.run(source, **kwargs)
            except BaseException as exc:  # handed to join()
                self._error = exc

        self._thread = threading.Thread(target=target, name="streamseq-live", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        """Ask :meth:`run` to finish after the current block."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> LiveSummary:
        if self._thread is not None:
            self._thread.join(timeout)
        if self._error is not None:
            raise self._error
        return self.summary()

    # ------------------------------------------------------------------ results
    def summary(self) -> LiveSummary:
        s, d = replace(self._sum), self._delays
        s.stream_s = self.stream_s
        s.wall_s = (self._ended or time.monotonic()) - self._started if self._started is not None else 0.0
        s.segments = len(self.uni_segments)
        s.speech_s = sum(u.end_s - u.start_s for u in self.uni_segments)
        s.overflows, s.dropped_blocks = self.overflows, self.dropped_blocks
        ended = {u.utterance for u in self.uni_segments if not u.at_stream_end}  # by silence
        s.mean_uni_end_latency_s = _mean([u.end_latency_s for u in self.uni_segments if u.utterance in ended])
        s.mean_bi_wait_s = _mean([b.wait_s for b in self.bi_decisions if b.utterance in ended])
        s.mean_uni_frame_delay_s = float(d[0] / d[1]) if d[1] else None
        s.mean_bi_frame_delay_s = float(d[2] / d[3]) if d[3] else None
        return s

    def to_dict(self) -> dict[str, Any]:
        """Segments (uni and bi, with decision frames and latencies) and the summary, for JSON."""
        uni = [asdict(u) | {"end_latency_s": u.end_latency_s} for u in self.uni_segments]
        bi = [{k: v for k, v in asdict(b).items() if k not in ("times", "probs")}
              | {"decision_frame": round(b.decided_s / self.shift), "wait_s": b.wait_s, "held_s": b.held_s}
              for b in self.bi_decisions]
        decoded = {} if self.decoding is None else self.decoding.to_dict()
        return _rounded({"sample_rate": self.sample_rate, "frame_shift_s": self.shift,
                         "uni_output_delay_frames": self.uni.config.output_delay,
                         "segmenter": asdict(self.segmenter_config), "uni": uni, "bi": bi, **decoded,
                         "summary": self.summary().to_dict()})


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _rounded(x: Any) -> Any:
    """``x`` with floats rounded to 0.1 ms (seconds) / 4 digits (probabilities), for JSON."""
    if isinstance(x, float):
        return round(x, 4)
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    return [_rounded(v) for v in x] if isinstance(x, list) else x
