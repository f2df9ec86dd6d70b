"""Latency of VAD models, measured through the real streaming path, chunk by chunk.

Times are seconds of *stream time* (audio fed so far, as a microphone would deliver it)
unless named ``wall``. Dimension legend: N samples, T frames. Sample rates and the frame grid
come from the model's :class:`~streamseq.features.FeatureConfig` (16 kHz and 10 ms for the
shipped models); labels have one value per model frame.

Data flow::

    processor (Session | BufferedProcessor | stand-in)  -- accept(chunk) ... finish()
      -> stream_arrivals(processor, audio)  [Arrival(time_s, FrameOutputs, wall_s)]
      -> measure_clip(arrivals, labels)     ClipMeasurement (Segmenter events with their
                                            decision times; onset/offset/final delays)
      -> summarize(label, measurements)     LatencyRow (one line of the report)

A task may bring its own report instead (:func:`task_report`: its ``latency_report`` method,
e.g. digits: per-digit emission delays); this module then only feeds it the audio
(:func:`stream_arrivals`). Models of a task without one get the segment report below.

Anything with ``accept(samples, sample_rate=...) -> FrameOutputs`` and ``finish() -> FrameOutputs``
plugs in; :class:`ReferenceProcessor` is such a stand-in whose delay is known exactly. A model's
outputs become per-frame speech scores through its task (:class:`~streamseq.tasks.SegmentingTask`,
e.g. VAD); a stand-in outputs one score per frame itself.

Delays (decision time minus reference boundary, per reference speech segment matched to a
model segment): *onset* uses the Segmenter's "start" event, *offset* its "end" event, and
*final* (end of utterance) the "end" event of each clip's last reference segment. A
bidirectional model gets every output at end of input, so all its decisions are made then.
Reference segments are the labels through the same Segmenter rules without padding (gaps
shorter than ``min_silence_s`` bridged, islands shorter than ``min_speech_s`` dropped), so a
perfect model's delays are exactly ``min_speech_s`` (onset) and ``min_silence_s`` (offset).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Protocol, runtime_checkable

import numpy as np

from streamseq.audio.convert import validate_sample_rate
from streamseq.features.config import FeatureConfig
from streamseq.models.checkpoint import load_model, pretrained_path, resolve_checkpoint
from streamseq.models.recurrent import FrameModel
from streamseq.streaming.session import BufferedProcessor, FrameOutputs, Session
from streamseq.tasks import ReportingTask, model_task, segmenting_task
from streamseq.tasks.formats import percentile_ms, rows_csv
from streamseq.tasks.vad.metrics import frame_metrics, roc_auc, segment_boundary_errors
from streamseq.tasks.vad.postprocess import Segment, SegmentEvent, Segmenter, SegmenterConfig, segments_from_probs

ORACLE = "oracle (labels)"  # label of the ReferenceProcessor row (the Segmenter's delay floor)
DEFAULT_MODELS = ("vad-uni", "vad-uni-d5", "vad-uni-d10", "vad-uni-d20", "vad-uni-d50", "vad-bi")
Clip = tuple[np.ndarray, np.ndarray, dict]  # (audio (N,), labels (T,) one per model frame, meta)


@runtime_checkable
class StreamProcessor(Protocol):
    """What the measurement needs: the per-stream interface of Session and BufferedProcessor."""

    def accept(self, samples: np.ndarray, *, sample_rate: int) -> FrameOutputs: ...

    def finish(self) -> FrameOutputs: ...


ProcessorSource = FrameModel | StreamProcessor | Callable[[np.ndarray], StreamProcessor]


def load_models(names: Sequence[str]) -> tuple[dict[str, FrameModel], list[str]]:
    """Load what exists: ``({label: model}, [messages for the missing ones])``.

    Damaged or foreign files still raise :class:`~streamseq.CheckpointError`; a model of a task
    without its own report (:func:`task_report`) that does not segment the stream raises
    ValueError (both name the file), and so do models of different tasks.
    """
    models: dict[str, FrameModel] = {}
    missing: list[str] = []
    tasks: dict[str, str] = {}  # task -> the first file of it
    for name in names:
        path = resolve_checkpoint(name)
        if not path.is_file():
            if not path.suffix and len(path.parts) == 1:  # a shipped name that is not built
                missing.append(f"model {name}: {pretrained_path(name)} not found; "
                               "train the shipped models with `make models`")
            else:
                missing.append(f"model {name}: {path} not found; pass an existing checkpoint "
                               "(`streamseq train --out DIR` writes DIR/best.pt)")
            continue
        model = load_model(path)
        if task_report(model, str(path)) is None:
            segmenting_task(model, str(path), "the latency report")
        tasks.setdefault(model.task, str(path))
        if len(tasks) > 1:
            raise ValueError("the latency report compares models of one task; received "
                             + ", ".join(f"{file} (task {task!r})" for task, file in tasks.items()))
        models[unique_label(model_label(model), models)] = model
    return models, missing


def task_report(model: FrameModel, what: str = "the model") -> ModuleType | None:
    """The report of ``model``'s task, if it has its own (a :class:`~streamseq.tasks.base.ReportingTask`,
    e.g. ``streamseq/tasks/digits/latency.py``); None: the segment report of this module (VAD).

    Such a module has ``FILES`` (what it writes), ``default_split(cache_dir)`` (the default data),
    ``load_clips(split_dir)`` (audio at ``SAMPLE_RATE`` Hz), ``pick_timeline_clip(clips)`` and
    ``run_report(models, clips, stream, *, out, timeline_clip, source, chunk_ms, machine, progress)``
    (returning an object with ``markdown``); ``stream(processor, audio)`` is :func:`stream_arrivals`
    at the chunk size.
    """
    task = model_task(model, what)
    return task.latency_report() if isinstance(task, ReportingTask) else None


def model_label(model: FrameModel) -> str:
    """``"uni +0 ms"``, ``"uni +100 ms"`` (output delay 10 frames) or ``"bi (utterance)"``."""
    if not model.streaming:
        return "bi (utterance)"
    return f"uni +{model.lookahead_ms:g} ms"


def unique_label(label: str, taken: dict) -> str:
    """``label``, or ``label #2``, ``#3`` ... if already a key of ``taken``."""
    n, out = 2, label
    while out in taken:
        out, n = f"{label} #{n}", n + 1
    return out


def processor_for(model: FrameModel) -> StreamProcessor:
    """The real streaming path: a :class:`Session` for uni models, :class:`BufferedProcessor` for bi."""
    return Session(model) if model.streaming else BufferedProcessor(model)


@dataclass
class Arrival:
    """Outputs returned by one ``accept`` (or the final ``finish``) call.

    time_s: stream time when they came back (samples fed so far / sample rate); wall_s:
    wall-clock seconds the call took.
    """

    time_s: float
    outputs: FrameOutputs
    wall_s: float
    final: bool = False


def stream_arrivals(processor: StreamProcessor, audio: np.ndarray, chunk_ms: float = 32.0, *,
                    sample_rate: int) -> list[Arrival]:
    """Feed ``audio (N,)`` at ``sample_rate`` Hz in chunks of ``chunk_ms`` like a microphone, then finish."""
    sample_rate = validate_sample_rate(sample_rate)
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio of shape (N,), received shape {audio.shape}")
    step = round(chunk_ms * sample_rate / 1000)
    if step < 1:
        raise ValueError(f"expected chunk_ms >= {1000 / sample_rate} (one sample), received {chunk_ms}")
    arrivals = []
    for start in range(0, audio.size, step):
        t0 = time.perf_counter()
        out = processor.accept(audio[start : start + step], sample_rate=sample_rate)
        arrivals.append(Arrival(min(start + step, audio.size) / sample_rate, out, time.perf_counter() - t0))
    t0 = time.perf_counter()
    out = processor.finish()
    arrivals.append(Arrival(audio.size / sample_rate, out, time.perf_counter() - t0, final=True))
    expected = 0
    for a in arrivals:
        if len(a.outputs) and a.outputs.start_frame != expected:
            raise ValueError(
                f"processor skipped frames: expected start_frame {expected}, received {a.outputs.start_frame}"
            )
        expected += len(a.outputs)
    return arrivals


class ReferenceProcessor:
    """A stand-in with exactly known delay: its output for frame t is ``labels[t - shift]``.

    ``shift`` frames: the stand-in *detects* everything that late (its values are wrong by
    ``shift``). ``delay`` frames: output delay like a uni model's lookahead (frame t comes back
    once frames up to ``t + delay`` have arrived; the rest at ``finish``). ``buffered``: like a
    BufferedProcessor, nothing before ``finish``. Frames follow the causal grid of a frontend
    with ``features`` (the model's FeatureConfig): audio at ``features.sample_rate``, frame t
    complete once ``hop_length * (t + 1)`` samples have arrived.
    """

    def __init__(self, labels: np.ndarray, shift: int = 0, delay: int = 0, buffered: bool = False,
                 features: FeatureConfig = FeatureConfig()) -> None:
        if shift < 0 or delay < 0:
            raise ValueError(f"expected shift >= 0 and delay >= 0 frames, received {shift}, {delay}")
        self.labels = np.asarray(labels, dtype=np.float32)
        self.shift, self.delay, self.buffered, self.features = shift, delay, buffered, features
        self.hop = features.hop_length
        self.reset()

    def reset(self) -> None:
        self.samples, self.emitted = 0, 0

    def _emit(self, upto: int) -> FrameOutputs:
        frames = np.arange(self.emitted, max(self.emitted, upto)) - self.shift
        ok = (frames >= 0) & (frames < self.labels.size)
        values = np.where(ok, self.labels[np.clip(frames, 0, max(self.labels.size - 1, 0))], 0.0)
        out = FrameOutputs(self.emitted, values.astype(np.float32)[:, None], self.features.frame_shift_s)
        self.emitted += len(out)
        return out

    def accept(self, samples: np.ndarray, *, sample_rate: int) -> FrameOutputs:
        if sample_rate != self.features.sample_rate:
            raise ValueError(f"ReferenceProcessor expects {self.features.sample_rate} Hz audio (its features' "
                             f"rate), received {sample_rate} Hz")
        self.samples += len(samples)
        return self._emit(0 if self.buffered else self.samples // self.hop - self.delay)

    def finish(self) -> FrameOutputs:
        out = self._emit(-(-self.samples // self.hop))  # ceil(N / hop) frames in all
        self.reset()
        return out


@dataclass
class TimedEvent:
    """A Segmenter event and the stream time its decision frame arrived."""

    event: SegmentEvent
    decision_s: float


@dataclass
class ClipMeasurement:
    """One clip through one processor. Delays are seconds; one entry per matched reference segment."""

    duration_s: float
    probs: np.ndarray  # (T,) speech probability
    arrival_s: np.ndarray  # (T,) stream time each frame's output arrived
    events: list[TimedEvent]
    reference: list[Segment]
    segments: list[Segment]  # what the model's Segmenter produced (padded)
    matches: list[tuple[int, int]]  # (reference index, segment index)
    onset_delays_s: list[float]
    offset_delays_s: list[float]
    final_delay_s: float | None  # last reference segment's end -> its "end" event; None if missed
    onset_errors_s: list[float]
    offset_errors_s: list[float]
    n_missed: int
    n_inserted: int
    chunk_wall_s: np.ndarray  # (chunks,) wall-clock seconds per accept call
    finish_wall_s: float


def single_score(values: np.ndarray) -> np.ndarray:
    """The scores ``(n,)`` of a processor that outputs one score per frame, ``(n, 1)`` (a stand-in)."""
    if values.ndim != 2 or values.shape[1] != 1:
        raise ValueError(f"expected one score per frame, outputs of shape (n, 1); received shape {values.shape} "
                         "(for a model's outputs pass scores=, its task's scores)")
    return values[:, 0]


def reference_segments(labels: np.ndarray, config: SegmenterConfig = SegmenterConfig()) -> list[Segment]:
    """Labels ``(T,)`` through the Segmenter rules without padding (see the module docstring)."""
    return segments_from_probs(np.asarray(labels, dtype=np.float64), replace(config, pad_s=0.0))


def measure_clip(arrivals: Sequence[Arrival], labels: np.ndarray, config: SegmenterConfig = SegmenterConfig(),
                 scores: Callable[[np.ndarray], np.ndarray] = single_score) -> ClipMeasurement:
    """Run the one incremental Segmenter over the arrivals' scores; time and match its events.

    ``scores``: outputs ``(n, C)`` -> speech scores ``(n,)`` (a model's: its task's ``scores``).
    The Segmenter (and the reference) run on the outputs' frame grid: ``config.frame_shift_s``
    is replaced by the outputs' ``frame_shift_s``.
    """
    if not arrivals:
        raise ValueError("expected at least the final arrival (from finish())")
    config = replace(config, frame_shift_s=arrivals[-1].outputs.frame_shift_s)
    arrived = [scores(a.outputs.values) for a in arrivals]
    probs = np.concatenate(arrived).astype(np.float64)
    arrival_s = np.concatenate([np.full(len(a.outputs), a.time_s) for a in arrivals])
    labels = np.asarray(labels)
    if probs.size != labels.size:
        raise ValueError(f"expected one output per label frame ({labels.size}), received {probs.size}")
    segmenter, raw = Segmenter(config), []
    for p in arrived:  # push as the outputs arrive: the streaming path
        raw += segmenter.push(p)
    raw += segmenter.flush()
    events = [TimedEvent(e, float(arrival_s[e.frame - 1])) for e in raw]  # decision frame -> arrival
    starts = [e for e in events if e.event.kind == "start"]
    ends = [e for e in events if e.event.kind == "end"]
    assert len(starts) == len(ends), "Segmenter events must alternate start/end"
    ref = reference_segments(labels, config)
    hyp = [e.event.segment for e in ends if e.event.segment is not None]
    assert len(hyp) == len(ends), "Segmenter end events carry their segment"
    errors = segment_boundary_errors(ref, hyp)
    onset = [starts[j].decision_s - ref[i].start for i, j in errors["matches"]]
    offset = [ends[j].decision_s - ref[i].end for i, j in errors["matches"]]
    last = [d for (i, _), d in zip(errors["matches"], offset, strict=True) if i == len(ref) - 1]
    return ClipMeasurement(
        duration_s=arrivals[-1].time_s, probs=probs, arrival_s=arrival_s, events=events,
        reference=ref, segments=hyp, matches=errors["matches"], onset_delays_s=onset,
        offset_delays_s=offset, final_delay_s=last[0] if last else None,
        onset_errors_s=errors["onset_errors_s"], offset_errors_s=errors["offset_errors_s"],
        n_missed=errors["n_missed"], n_inserted=errors["n_inserted"],
        chunk_wall_s=np.array([a.wall_s for a in arrivals if not a.final]),
        finish_wall_s=arrivals[-1].wall_s,
    )


def measure(source: ProcessorSource, clips: Sequence[Clip], chunk_ms: float = 32.0,
            config: SegmenterConfig = SegmenterConfig(), sample_rate: int | None = None) -> list[ClipMeasurement]:
    """Measure every clip. ``source``: a model (its real streaming path), a processor (reused:
    ``finish`` starts a new stream) or a callable building one from each clip's labels.

    ``sample_rate``: of the clips' audio; default: the model's ``feature_config.sample_rate``
    (a corpus made for it), or that of ``FeatureConfig()`` for the other sources.
    """
    scores: Callable[[np.ndarray], np.ndarray] = single_score
    if isinstance(source, FrameModel):
        scores = partial(segmenting_task(source, "the model", "the latency report").scores, source)
        sample_rate = sample_rate or source.feature_config.sample_rate
        source = processor_for(source)
    rate = sample_rate or FeatureConfig().sample_rate
    results = []
    for audio, labels, _ in clips:
        processor = source if isinstance(source, StreamProcessor) else source(labels)
        arrivals = stream_arrivals(processor, audio, chunk_ms, sample_rate=rate)
        results.append(measure_clip(arrivals, labels, config, scores))
    return results


@dataclass
class LatencyRow:
    """One model's line of the report. Delays and timings in ms; ``lookahead_ms`` None for bi."""

    model: str
    lookahead_ms: float | None
    onset_p50_ms: float
    onset_p90_ms: float
    offset_p50_ms: float
    offset_p90_ms: float
    final_p50_ms: float
    final_p90_ms: float
    chunk_p50_ms: float
    chunk_p99_ms: float
    finish_p50_ms: float
    rtf: float
    roc_auc: float
    f1: float
    onset_error_ms: float
    offset_error_ms: float
    n_reference: int
    n_missed: int
    n_inserted: int


def summarize(model: str, measurements: Sequence[ClipMeasurement], labels: Sequence[np.ndarray],
              lookahead: float | None = None, threshold: float = 0.5) -> LatencyRow:
    """Pool one model's clips: delay percentiles, compute time, frame and segment accuracy."""
    pooled = {name: [x for m in measurements for x in getattr(m, name)] for name in
              ("onset_delays_s", "offset_delays_s", "onset_errors_s", "offset_errors_s")}
    finals = [m.final_delay_s for m in measurements if m.final_delay_s is not None]
    probs = np.concatenate([m.probs for m in measurements])
    truth = np.concatenate([np.asarray(y) for y in labels])
    chunks = np.concatenate([m.chunk_wall_s for m in measurements])
    finish = [m.finish_wall_s for m in measurements]
    audio_s = sum(m.duration_s for m in measurements)
    mean_ms = lambda xs: float(np.mean(xs)) * 1000 if xs else float("nan")  # noqa: E731
    return LatencyRow(
        model=model, lookahead_ms=lookahead,
        onset_p50_ms=percentile_ms(pooled["onset_delays_s"], 50),
        onset_p90_ms=percentile_ms(pooled["onset_delays_s"], 90),
        offset_p50_ms=percentile_ms(pooled["offset_delays_s"], 50),
        offset_p90_ms=percentile_ms(pooled["offset_delays_s"], 90),
        final_p50_ms=percentile_ms(finals, 50), final_p90_ms=percentile_ms(finals, 90),
        chunk_p50_ms=percentile_ms(chunks, 50), chunk_p99_ms=percentile_ms(chunks, 99),
        finish_p50_ms=percentile_ms(finish, 50),
        rtf=(chunks.sum() + sum(finish)) / audio_s if audio_s else float("nan"),
        roc_auc=roc_auc(probs, truth), f1=frame_metrics(probs, truth, threshold)["f1"],
        onset_error_ms=mean_ms(pooled["onset_errors_s"]), offset_error_ms=mean_ms(pooled["offset_errors_s"]),
        n_reference=sum(len(m.reference) for m in measurements),
        n_missed=sum(m.n_missed for m in measurements), n_inserted=sum(m.n_inserted for m in measurements),
    )


def warm_up(model: FrameModel, seconds: float = 1.0) -> None:
    """One short stream so that one-off allocations do not land in the first clip's timings."""
    rate = model.feature_config.sample_rate
    stream_arrivals(processor_for(model), np.zeros(int(seconds * rate), np.float32), sample_rate=rate)


TABLE_HEADER = ["model", "lookahead", "onset delay p50 / p90", "offset delay p50 / p90",
                "end-of-utterance decision p50 / p90", "compute per chunk p50 / p99", "final call p50",
                "RTF", "ROC-AUC", "F1", "boundary error onset / offset", "missed / inserted"]
SHORT_HEADER = ["model", "ahead\n(ms)", "onset\np50/p90", "offset\np50/p90", "end-utt\np50/p90",
                "chunk\np50/p99", "final\ncall", "RTF", "AUC", "F1", "bound.\nerr on/off", "miss/ins/\nof ref"]


def table_cells(row: LatencyRow, units: bool = True) -> list[str]:
    """The report's cells for one row; ``units=False`` gives the compact terminal form (ms)."""
    ms = lambda v: "n/a" if np.isnan(v) else f"{v:.0f}"  # noqa: E731
    u, sep = (" ms", " / ") if units else ("", "/")
    look = ("whole utterance" if units else "utt.") if row.lookahead_ms is None else f"{row.lookahead_ms:.0f}{u}"
    pair = lambda a, b, f=ms: f"{f(a)}{sep}{f(b)}{u}"  # noqa: E731
    fine = lambda v: f"{v:.2f}"  # noqa: E731
    return [row.model, look, pair(row.onset_p50_ms, row.onset_p90_ms), pair(row.offset_p50_ms, row.offset_p90_ms),
            pair(row.final_p50_ms, row.final_p90_ms), pair(row.chunk_p50_ms, row.chunk_p99_ms, fine),
            f"{row.finish_p50_ms:.2f}{u}", f"{row.rtf:.4f}" if units else f"{row.rtf:.3f}",
            f"{row.roc_auc:.4f}", f"{row.f1:.4f}",
            pair(row.onset_error_ms, row.offset_error_ms),
            f"{row.n_missed} / {row.n_inserted} of {row.n_reference}" if units
            else f"{row.n_missed}/{row.n_inserted}/{row.n_reference}"]


def markdown_table(rows: Sequence[LatencyRow]) -> str:
    """The report table in Markdown."""
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|---|---|" + "---:|" * (len(TABLE_HEADER) - 2)]
    lines += ["| " + " | ".join(table_cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_csv(rows: Sequence[LatencyRow], path: str | os.PathLike) -> Path:
    """Every field of every row, full precision; ``lookahead_ms`` empty for bi."""
    return rows_csv(rows, LatencyRow, path)
