"""Latency of digit recognisers through the real streaming path: ``streamseq latency`` for digits models.

Times are seconds of *stream time* (audio fed so far, as a microphone would deliver it) unless
named ``wall``. Dimension legend: N samples, T frames, C outputs per frame (blank, 0-9, speech).
The app feeds the audio (``stream``: chunk by chunk, then ``finish``) and gives back *arrivals*,
the stream time at which each output came back; so a uni model's times include the chunk
(up to one chunk of waiting) and its output delay. This module decides what is measured:

* **uni** (streaming): a :class:`~streamseq.streaming.Session` over the whole clip, its outputs through
  the task's :class:`~streamseq.tasks.digits.decoder.DigitDecoder` as they arrive. A digit is
  *emitted* when its spike's first frame arrives. The clip's *final transcript* is available
  when the first end-of-speech "end" event decided at or after the reference's last digit end
  arrives (the flush at the clip's end if none is decided earlier: ``no_endpoint``).
* **bi** (whole utterance): it must wait for the end of the utterance. The *endpointer* is the
  report's first uni model (the one with the least lookahead; what ``streamseq mic`` uses): the
  endpoint E is the first end-of-speech decision of its speech column at or after the reference's
  last digit end (the clip end if it decides none: ``no_endpoint``). A
  :class:`~streamseq.streaming.BufferedProcessor` gets the audio up to E, and every digit and the
  transcript appear at ``E + compute`` (wall seconds of its ``finish``). Pauses between groups that
  the endpointer took for ends are ignored: the whole string waits for E. Without a uni model in
  the report, E is the clip end.

Per-digit *emission delay* = emission time - the reference digit's end, for the hypothesis digits
that the minimum edit alignment matches to an equal reference digit (substituted, inserted and
deleted digits have no delay). *End of utterance -> final transcript* = final transcript time -
the reference's last digit end. Digit error rate = edits / reference digits; string accuracy =
share of clips whose string is exactly right; both pooled over clips, overall and per SNR band.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from streamseq.models.recurrent import FrameModel
from streamseq.streaming.outputs import FrameOutputs
from streamseq.streaming.session import BufferedProcessor, Session
from streamseq.tasks.digits.evaluate import SAMPLE_RATE, Clip, default_split, load_split
from streamseq.tasks.digits.task import DigitsTask, align, digit_scores
from streamseq.tasks.formats import band_order, percentile_ms, rows_csv
from streamseq.tasks.vad.postprocess import Segmenter

__all__ = ["FILES", "ClipDigits", "DigitLatencyRow", "default_split", "load_clips", "measure",
           "pick_timeline_clip", "run_report", "summarize"]

FILES = ("latency.md", "latency.csv", "latency-accuracy.png", "timeline.png")
load_clips = load_split  # (audio (N,) at SAMPLE_RATE, meta) per clip of a digits split


class Arrival(Protocol):
    """Outputs returned by one ``accept`` (or the final ``finish``, ``final``) call, at stream time ``time_s``."""

    time_s: float
    outputs: FrameOutputs
    wall_s: float
    final: bool


class Processor(Protocol):
    def accept(self, samples: np.ndarray, *, sample_rate: int) -> FrameOutputs: ...

    def finish(self) -> FrameOutputs: ...


Stream = Callable[[Processor, np.ndarray], Sequence[Arrival]]  # feed audio (N,) chunk by chunk, then finish


@dataclass
class ClipDigits:
    """One clip through one model. Times in stream seconds; one ``emitted_s`` per hypothesis digit."""

    reference: str
    reference_ends_s: np.ndarray  # (len(reference),) end of each reference digit's word
    hypothesis: str
    emitted_s: np.ndarray  # (len(hypothesis),) stream time each digit appeared
    matches: list[tuple[int, int]]  # (reference index, hypothesis index) of equal aligned digits
    delays_s: list[float]  # per match: emitted - reference end
    final_s: float | None  # when the final transcript was available; None: no transcript after the string
    no_endpoint: bool  # no end-of-speech decision after the string: final only at the clip end (or never)
    speech_ends_s: list[float]  # stream times of the end-of-speech decisions of the speech column (uni)
    duration_s: float
    snr_band: str
    chunk_wall_s: np.ndarray  # (chunks,) wall seconds per accept call
    finish_wall_s: float

    @property
    def final_delay_s(self) -> float | None:
        """Reference last digit end -> final transcript (None without one)."""
        if self.final_s is None or not self.reference:
            return None
        return self.final_s - float(self.reference_ends_s[-1])


def _reference(meta: dict) -> tuple[str, np.ndarray]:
    digits, times = meta["digits"], np.asarray(meta.get("digit_times", []), dtype=np.float64).reshape(-1, 2)
    if len(digits) != len(times):
        raise ValueError(f"expected one [start, end] in meta 'digit_times' per digit of {digits!r}; received "
                         f"{len(times)} (the digits corpus writes them)")
    return digits, times[:, 1]


def _clip(meta: dict, hypothesis: str, emitted_s: np.ndarray, final_s: float | None, no_endpoint: bool,
          speech_ends_s: list[float], arrivals: Sequence[Arrival]) -> ClipDigits:
    ref, ends = _reference(meta)
    matches = [(i, j) for i, j in align(ref, hypothesis) if i is not None and j is not None and ref[i] == hypothesis[j]]
    return ClipDigits(ref, ends, hypothesis, emitted_s, matches, [float(emitted_s[j] - ends[i]) for i, j in matches],
                      final_s, no_endpoint, speech_ends_s, arrivals[-1].time_s, str(meta.get("snr_band", "none")),
                      np.array([a.wall_s for a in arrivals if not a.final]), arrivals[-1].wall_s)


def measure_uni(model: FrameModel, audio: np.ndarray, meta: dict, stream: Stream) -> ClipDigits:
    """One clip through a streaming model's Session and the task's decoder, pushed as outputs arrive."""
    task = DigitsTask()
    decoder, segmenter = task.decoder(model), Segmenter(task.segmenter_config(model))
    arrivals = stream(Session(model), audio)
    arrival_s = np.concatenate([np.full(len(a.outputs), a.time_s) for a in arrivals])  # (T,)
    events, speech_ends = [], []
    for a in arrivals:
        events += decoder.push(a.outputs.values)
        speech_ends += [float(arrival_s[e.frame - 1]) for e in segmenter.push(task.scores(model, a.outputs.values))
                        if e.kind == "end"]
    flushed = decoder.flush()
    digits = [e for e in events if e.kind == "digit"]
    ref_end = _reference(meta)[1][-1:]
    ends = [(float(arrival_s[e.frame - 1]), False) for e in events if e.kind == "end"]
    ends += [(arrivals[-1].time_s, True) for e in flushed if e.kind == "end"]
    later = [(t, at_end) for t, at_end in ends if not ref_end.size or t >= ref_end[0]]
    final_s, no_endpoint = later[0] if later else (None, True)
    return _clip(meta, "".join(e.digit for e in digits), np.array([arrival_s[e.frame] for e in digits]), final_s,
                 no_endpoint, speech_ends, arrivals)


def measure_bi(model: FrameModel, audio: np.ndarray, meta: dict, stream: Stream,
               endpoint_s: float | None) -> ClipDigits:
    """One clip through a BufferedProcessor fed up to ``endpoint_s`` (None: the whole clip); everything
    appears at the endpoint plus the wall time of its ``finish``."""
    n = audio.size if endpoint_s is None else min(audio.size, round(endpoint_s * SAMPLE_RATE))
    arrivals = stream(BufferedProcessor(model), audio[:n])
    values = np.concatenate([a.outputs.values for a in arrivals])  # (T, C), all from finish()
    decoder = DigitsTask().decoder(model)
    digits = [e for e in decoder.push(values) + decoder.flush() if e.kind == "digit"]
    done = arrivals[-1].time_s + arrivals[-1].wall_s
    return _clip(meta, "".join(e.digit for e in digits), np.full(len(digits), done), done if digits else None,
                 endpoint_s is None, [], arrivals)


def endpoints(endpointer: Sequence[ClipDigits] | None, clips: Sequence[Clip]) -> list[float | None]:
    """Per clip: the endpointer's first end-of-speech decision at or after the reference's last digit end
    (None: the clip end)."""
    if endpointer is None:
        return [None] * len(clips)
    out: list[float | None] = []
    for m, (_, meta) in zip(endpointer, clips, strict=True):
        last = _reference(meta)[1][-1:]
        out.append(next((t for t in m.speech_ends_s if not last.size or t >= last[0]), None))
    return out


def measure(model: FrameModel, clips: Sequence[Clip], stream: Stream,
            endpoints_s: Sequence[float | None] | None = None) -> list[ClipDigits]:
    """Every clip through ``model``: a uni model streams; a bi model waits for ``endpoints_s`` (per clip;
    None or a None entry: the clip end)."""
    if model.task != DigitsTask.name:
        raise ValueError(f"expected a model of task 'digits'; received one of task {model.task!r}")
    if model.streaming:
        return [measure_uni(model, audio, meta, stream) for audio, meta in clips]
    ends = list(endpoints_s) if endpoints_s is not None else [None] * len(clips)
    return [measure_bi(model, audio, meta, stream, e) for (audio, meta), e in zip(clips, ends, strict=True)]


# ----------------------------------------------------------------------------- summary
@dataclass
class DigitLatencyRow:
    """One model's line of the report over ``snr_band`` ("all" or one band). Times in ms; ``lookahead_ms``
    None for bi; ``endpointer``: what a bi model waited for."""

    model: str
    lookahead_ms: float | None
    snr_band: str
    clips: int
    digits: int
    matched: int
    delay_p50_ms: float
    delay_p90_ms: float
    final_p50_ms: float
    final_p90_ms: float
    no_endpoint: int
    digit_error_rate: float
    string_accuracy: float
    chunk_p50_ms: float
    chunk_p99_ms: float
    finish_p50_ms: float
    rtf: float
    endpointer: str = ""


def summarize(name: str, measured: Sequence[ClipDigits], lookahead: float | None, band: str = "all",
              endpointer: str = "") -> DigitLatencyRow:
    """Pool clips: delay percentiles, digit error rate, string accuracy and compute."""
    delays = [d for m in measured for d in m.delays_s]
    finals = [d for m in measured if (d := m.final_delay_s) is not None]
    digits = sum(len(m.reference) for m in measured)
    chunks = np.concatenate([m.chunk_wall_s for m in measured]) if measured else np.zeros(0)
    finish = [m.finish_wall_s for m in measured]
    audio_s = sum(m.duration_s for m in measured)
    return DigitLatencyRow(
        model=name, lookahead_ms=lookahead, snr_band=band, clips=len(measured), digits=digits,
        matched=len(delays), delay_p50_ms=percentile_ms(delays, 50), delay_p90_ms=percentile_ms(delays, 90),
        final_p50_ms=percentile_ms(finals, 50), final_p90_ms=percentile_ms(finals, 90),
        no_endpoint=sum(m.no_endpoint for m in measured),
        **digit_scores([m.reference for m in measured], [m.hypothesis for m in measured]),
        chunk_p50_ms=percentile_ms(chunks, 50), chunk_p99_ms=percentile_ms(chunks, 99),
        finish_p50_ms=percentile_ms(finish, 50),
        rtf=(chunks.sum() + sum(finish)) / audio_s if audio_s else float("nan"), endpointer=endpointer)


def band_rows(name: str, measured: Sequence[ClipDigits], lookahead: float | None,
              endpointer: str = "") -> list[DigitLatencyRow]:
    """The "all" row, then one per SNR band ("clean" first, then from the highest SNR down)."""
    bands = sorted({m.snr_band for m in measured}, key=band_order)
    return [summarize(name, measured, lookahead, "all", endpointer)] + [
        summarize(name, [m for m in measured if m.snr_band == b], lookahead, b, endpointer) for b in bands]


TABLE_HEADER = ["model", "lookahead", "per-digit emission delay p50 / p90", "end of utterance -> final transcript "
                "p50 / p90", "no final before the clip end", "digit error rate", "string accuracy",
                "compute per chunk p50 / p99", "final call p50", "RTF"]


def table_cells(row: DigitLatencyRow) -> list[str]:
    ms = lambda v: "n/a" if np.isnan(v) else f"{v:.0f}"  # noqa: E731
    look = "whole utterance" if row.lookahead_ms is None else f"{row.lookahead_ms:.0f} ms"
    return [row.model, look, f"{ms(row.delay_p50_ms)} / {ms(row.delay_p90_ms)} ms",
            f"{ms(row.final_p50_ms)} / {ms(row.final_p90_ms)} ms", f"{row.no_endpoint} of {row.clips}",
            f"{row.digit_error_rate:.2%}", f"{row.string_accuracy:.2%}",
            f"{row.chunk_p50_ms:.2f} / {row.chunk_p99_ms:.2f} ms", f"{row.finish_p50_ms:.2f} ms", f"{row.rtf:.4f}"]


def markdown_tables(rows: Sequence[DigitLatencyRow]) -> str:
    """The overall table, then digit error rate / string accuracy / median emission delay per SNR band."""
    overall = [r for r in rows if r.snr_band == "all"]
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|---|---|" + "---:|" * (len(TABLE_HEADER) - 2)]
    lines += ["| " + " | ".join(table_cells(r)) + " |" for r in overall]
    bands = sorted({r.snr_band for r in rows if r.snr_band != "all"}, key=band_order)
    if bands:
        lines += ["", "Per SNR band: digit error rate / string accuracy / median per-digit emission delay", "",
                  "| model | " + " | ".join(f"SNR {b}" for b in bands) + " |", "|---|" + "---:|" * len(bands)]
        for r in overall:
            cells = {x.snr_band: x for x in rows if x.model == r.model}
            lines.append(f"| {r.model} | " + " | ".join(
                f"{cells[b].digit_error_rate:.1%} / {cells[b].string_accuracy:.0%} / "
                + ("n/a" if np.isnan(cells[b].delay_p50_ms) else f"{cells[b].delay_p50_ms:.0f} ms")
                if b in cells else "" for b in bands) + " |")
    return "\n".join(lines) + "\n"


def pick_timeline_clip(clips: Sequence[Clip]) -> int:
    """Index of the first clip of two or more groups and at least four digits (else 0)."""
    return next((i for i, (_, meta) in enumerate(clips)
                 if len(meta.get("groups", [])) >= 2 and len(meta.get("digits", "")) >= 4), 0)


# ----------------------------------------------------------------------------- the report
@dataclass
class Report:
    """What :func:`run_report` measured: rows (overall and per band) and the per-clip measurements."""

    rows: list[DigitLatencyRow]
    measured: dict[str, list[ClipDigits]] = field(default_factory=dict)
    endpointer: str | None = None
    markdown: str = ""


def run_report(models: Mapping[str, FrameModel], clips: Sequence[Clip], stream: Stream, *, out: Path,
               timeline_clip: int, source: str, chunk_ms: float, machine: str,
               progress: Callable[[str], None] = lambda _: None) -> Report:
    """Measure ``models`` (labelled) on ``clips``, uni ones first (the first, least lookahead, is the
    endpointer of the bi ones); write ``out``/:data:`FILES`."""
    from streamseq.tasks.digits.latency_plots import plot_timeline, plot_tradeoff

    task = DigitsTask()
    for name, model in models.items():
        if model.task != task.name:
            raise ValueError(f"model {name} is of task {model.task!r}; the digits report needs digits models")
    uni = sorted((n for n, m in models.items() if m.streaming), key=lambda n: models[n].lookahead_ms or 0.0)
    endpointer = uni[0] if uni else None
    measured: dict[str, list[ClipDigits]] = {}
    for name in uni + [n for n, m in models.items() if not m.streaming]:
        progress(f"measuring {name} ...")
        ends = None if endpointer is None or models[name].streaming else endpoints(measured[endpointer], clips)
        measured[name] = measure(models[name], clips, stream, ends)
    rows = [r for name, model in models.items() for r in band_rows(
        name, measured[name], model.lookahead_ms, "" if model.streaming else (endpointer or "clip end"))]
    config = task.segmenter_config(next(iter(models.values())))
    hours = sum(a.size for a, _ in clips) / SAMPLE_RATE / 3600
    header = (f"{len(clips)} clips ({hours:.2f} h) from `{source}`; chunks of {chunk_ms:g} ms; end of speech after "
              f"{config.min_silence_s * 1000:.0f} ms below {config.offset} on the speech output; bi models run on "
              f"the audio up to the end of speech decided by {endpointer or 'the clip end (no uni model)'}, then "
              f"answer after their compute time; delays after the reference digit ends (stream time); compute on "
              f"{machine}.")
    markdown = f"{header}\n\n{markdown_tables(rows)}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "latency.md").write_text(markdown)
    rows_csv(rows, DigitLatencyRow, out / "latency.csv")  # overall and per band; lookahead_ms empty for bi
    plot_tradeoff([r for r in rows if r.snr_band == "all"], out / "latency-accuracy.png")
    audio, meta = clips[timeline_clip]
    plot_timeline(audio, meta, {n: m[timeline_clip] for n, m in measured.items()}, out / "timeline.png")
    return Report(rows, measured, endpointer, markdown)
