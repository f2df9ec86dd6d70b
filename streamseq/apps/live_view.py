"""Terminal views of a :class:`~streamseq.apps.live.LivePipeline`: a rich live view and plain lines.

Both take the pipeline's events one by one (``update(event)``) on the UI thread; neither
touches audio or models. The rich view draws, over the last ``window_s`` seconds of stream
time, the uni speech probability (filled in block by block) above the bi one (blank while
the bi model buffers the utterance, filled in all at once when the utterance ends), then a
table of utterances with the uni end-of-speech delay next to the bi wait. For a task that
decodes text live (:class:`~streamseq.apps.live.TaskEvent`, e.g. digits) the view also shows the
uni partial transcript as it grows, and the table each utterance's uni and bi transcripts.
"""

from __future__ import annotations

import io
from collections import deque
from typing import TextIO

import numpy as np
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from streamseq.apps.live import BiDecision, BlockUpdate, LiveEvent, LiveSummary, SpeechStart, TaskEvent, UniSegment
from streamseq.features import FeatureConfig

BARS = "▁▂▃▄▅▆▇█"
HELD = -1.0  # bi frame the model holds but has not decided yet


def _spark(probs: np.ndarray, onset: float, offset: float) -> Text:
    """One character per column of ``probs``: NaN blank (no decision), HELD a dot, else a bar."""
    text = Text()
    for p in probs:
        if np.isnan(p):
            text.append(" ")
        elif p == HELD:
            text.append("·", style="yellow")
        else:
            style = "bold green" if p >= onset else "yellow" if p >= offset else "grey50"
            text.append(BARS[min(len(BARS) - 1, int(round(p * (len(BARS) - 1))))], style=style)
    return text


def _seconds(x: float | None, unit: str = " s") -> str:
    return "–" if x is None else f"{x:.2f}{unit}"


def summary_lines(s: LiveSummary) -> list[str]:
    """The session summary as text lines (shared by both views)."""
    return [
        f"segments {s.segments}, speech {s.speech_s:.2f} s of {s.stream_s:.2f} s stream time",
        f"uni end-of-speech delay (mean) {_seconds(s.mean_uni_end_latency_s)}; "
        f"bi wait after utterance end (mean) {_seconds(s.mean_bi_wait_s)}",
        f"per-frame decision delay: uni {_seconds(s.mean_uni_frame_delay_s)}, bi {_seconds(s.mean_bi_frame_delay_s)}",
        f"processing: {s.blocks} blocks, mean {1000 * s.proc_s / max(1, s.blocks):.1f} ms, "
        f"max {1000 * s.max_block_proc_s:.1f} ms per block; real-time factor {s.rtf:.3f}",
        f"overflows {s.overflows}, dropped blocks {s.dropped_blocks}",
    ]


class PlainView:
    """Line-based events for logs and tests: one line per speech start, segment, bi decision, task
    event (a digit, a transcript), and one per ``fault_every_s`` of stream time while overflows or
    dropped blocks increase."""

    def __init__(self, out: TextIO, fault_every_s: float = 1.0) -> None:
        self.out, self.fault_every_s = out, fault_every_s
        self._faults = (0, 0)
        self._fault_shown_s = -np.inf

    def update(self, event: LiveEvent) -> None:
        line = None
        if isinstance(event, BlockUpdate):
            faults = (event.overflows, event.dropped_blocks)
            if faults != self._faults and event.stream_s - self._fault_shown_s >= self.fault_every_s:
                self._faults, self._fault_shown_s = faults, event.stream_s
                line = f"[{event.stream_s:7.2f} s] input overflow: overflows {faults[0]}, dropped blocks {faults[1]}"
        elif isinstance(event, SpeechStart):
            line = (f"[{event.decided_s:7.2f} s] uni #{event.utterance} speech from {event.start_s:.2f} s "
                    f"(+{event.latency_s:.2f} s)")
        elif isinstance(event, UniSegment):
            line = (f"[{event.end_decided_s:7.2f} s] uni #{event.utterance} segment {event.start_s:.2f}-"
                    f"{event.end_s:.2f} s, " + ("closed by the end of the stream" if event.at_stream_end
                                                else f"end-of-speech delay {event.end_latency_s:.2f} s"))
        elif isinstance(event, BiDecision):
            spans = ", ".join(f"{s.start:.2f}-{s.end:.2f}" for s in event.segments) or "no speech"
            line = (f"[{event.decided_s:7.2f} s] bi  #{event.utterance} segments {spans} s, wait {event.wait_s:.2f} s "
                    f"after the end (held {event.held_s:.2f} s, compute {1000 * event.compute_s:.0f} ms)")
        elif isinstance(event, TaskEvent):
            line = event.line()
        if line is not None:
            print(line, file=self.out, flush=True)

    def finish(self, summary: LiveSummary) -> None:
        print("summary: " + "\n         ".join(summary_lines(summary)), file=self.out, flush=True)


class LiveView:
    """Rich renderable state: ``update(event)`` then ``render()`` (e.g. inside ``rich.live.Live``).

    ``transcripts``: the task decodes text (:class:`~streamseq.apps.live.TaskEvent`): show the uni
    partial transcript and a transcript column per model instead of the bi segments.
    """

    def __init__(self, title: str, *, bi: bool = True, window_s: float = 6.4, column_s: float = 0.1, onset: float = 0.5,
                 offset: float = 0.35, frame_shift_s: float = FeatureConfig().frame_shift_s, rows: int = 8,
                 transcripts: bool = False) -> None:
        self.title, self.bi, self.transcripts = title, bi, transcripts
        self.partial = ""  # the uni model's text of the open utterance so far
        self.uni_text = ""  # the last final uni transcript and its wait
        self.bi_text = ""  # the last bi transcript and its wait
        self.columns = int(round(window_s / column_s))
        self.per_column = int(round(column_s / frame_shift_s))
        self.onset, self.offset, self.shift = onset, offset, frame_shift_s
        size = self.columns * self.per_column + 200  # + room for bi frames a little ahead of uni
        self._uni = np.full(size, np.nan)  # ring of recent frames, frame f at f % size
        self._bi = np.full(size, np.nan)
        self._frames = 0  # uni frames known so far
        self._bi_until = 0  # 1 + last frame the bi model decided
        self.last: BlockUpdate | None = None
        self.open: SpeechStart | None = None
        self.rows: deque[dict[str, str]] = deque(maxlen=rows)  # column -> cell
        self._pending: dict[int, dict[str, str]] = {}  # utterance -> its table row until bi decides
        self.summary: LiveSummary | None = None

    def _put(self, ring: np.ndarray, first: int, values: np.ndarray) -> None:
        size = ring.size
        lo = max(first, self._frames - size)  # older frames have scrolled out
        for f in range(lo, first + len(values)):
            ring[f % size] = values[f - first]

    def update(self, event: LiveEvent) -> None:
        if isinstance(event, BlockUpdate):
            end = event.first_frame + len(event.probs)
            for f in range(max(self._frames, self._bi_until), end):  # scrolling in, unknown to bi yet
                self._bi[f % self._bi.size] = np.nan
            self._frames = max(self._frames, end)
            self._put(self._uni, event.first_frame, event.probs)
            if event.bi_buffered_s is not None:  # mark what the bi model holds
                held = np.arange(int(round((event.stream_s - event.bi_buffered_s) / self.shift)), self._frames)
                slots = held[held >= self._frames - self._bi.size] % self._bi.size
                self._bi[slots] = np.where(np.isnan(self._bi[slots]), HELD, self._bi[slots])
            self.last = event
        elif isinstance(event, SpeechStart):
            self.open = event
        elif isinstance(event, UniSegment):
            self.open = None
            delay = "stream end" if event.at_stream_end else f"{event.end_latency_s:.2f} s"
            row = {"#": str(event.utterance), "uni segment": f"{event.start_s:.2f} – {event.end_s:.2f} s",
                   "uni end delay": delay, "bi segments": "deciding…" if self.bi else "(no bi)", "bi wait (held)": ""}
            if self.transcripts:
                row |= {"uni transcript": "", "bi transcript": "deciding…" if self.bi else "(no bi)"}
            self._pending[event.utterance] = row
            self.rows.append(row)
        elif isinstance(event, BiDecision):
            first = int(round(event.times[0] / self.shift)) if len(event.times) else 0
            self._put(self._bi, first, event.probs)
            self._bi_until = max(self._bi_until, first + len(event.probs))
            # with transcripts, the row waits for the bi transcript (the task event after this one)
            pending = self._pending.get if self.transcripts else self._pending.pop
            waiting = pending(event.utterance, None)
            if waiting is not None:
                spans = ", ".join(f"{s.start:.2f} – {s.end:.2f} s" for s in event.segments)
                waiting["bi segments"] = spans or "no speech"
                waiting["bi wait (held)"] = f"{event.wait_s:.2f} s ({event.held_s:.1f} s)"
                waiting["bi wait"] = f"{event.wait_s:.2f} s"  # not a column: for the transcript line
        elif isinstance(event, TaskEvent):
            self._task_event(event)

    def _task_event(self, event: TaskEvent) -> None:
        if not event.final:  # a uni partial: the open utterance's text so far
            self.partial = event.text
            return
        row = self._pending.get(event.utterance)
        if event.model == "uni":
            self.partial, self.uni_text = "", event.text or "–"
            if row is not None:
                row["uni transcript"] = event.text or "–"
                self.uni_text += f"  (#{event.utterance}, {row['uni end delay']} after the end)"
                if not self.bi:
                    self._pending.pop(event.utterance, None)
        else:
            self.bi_text = event.text or "–"
            if row is not None:
                row["bi transcript"] = event.text or "–"
                self.bi_text += f"  (#{event.utterance}, {row.get('bi wait', '–')} after the end)"
                self._pending.pop(event.utterance, None)

    def _first_frame(self) -> int:
        """First frame of the window; columns are aligned to stream time so they do not jitter."""
        last_column = max(0, self._frames - 1) // self.per_column
        return (last_column - self.columns + 1) * self.per_column

    def _timeline(self, ring: np.ndarray) -> np.ndarray:
        """Max probability per column over the window (NaN where nothing is known)."""
        frames = self._first_frame() + np.arange(self.columns * self.per_column)
        known = (frames >= 0) & (frames < self._frames)
        values = np.where(known, ring[frames % ring.size], np.nan).reshape(self.columns, self.per_column)
        any_known = ~np.isnan(values).all(axis=1)
        out = np.full(self.columns, np.nan)
        out[any_known] = np.nanmax(values[any_known], axis=1)
        return out

    def _axis(self) -> Text:
        """Stream-time ticks above the timeline, one label per second."""
        first, per_second = self._first_frame(), int(round(1 / self.shift))
        line = [" "] * self.columns
        for c in range(self.columns):
            frame = first + c * self.per_column
            if frame >= 0 and frame % per_second < self.per_column:
                label = f"╵{frame // per_second}s"
                line[c : c + len(label)] = label[: self.columns - c]
        return Text("".join(line[: self.columns]), style="grey50")

    def render(self) -> RenderableType:
        last = self.last
        meter = Table.grid(padding=(0, 1))
        meter.add_column(width=4)
        meter.add_column(no_wrap=True)
        meter.add_column(no_wrap=True)
        p = float(last.probs[-1]) if last is not None and len(last.probs) else 0.0
        state = Text("SPEECH", style="bold green") if self.open else Text("silence", style="grey50")
        meter.add_row("", self._axis(), "")
        meter.add_row("uni", _spark(self._timeline(self._uni), self.onset, self.offset),
                      Text(f"p={p:.2f} ") + state)
        buffered = last.bi_buffered_s if last is not None else None
        bi_state = (Text(f"buffering {buffered:.1f} s", style="bold yellow") if buffered is not None
                    else Text("waiting for speech" if self.bi else "off", style="grey50"))
        meter.add_row("bi", _spark(self._timeline(self._bi), self.onset, self.offset), bi_state)
        table = Table(title=None, expand=False, header_style="bold")
        columns = ((("#", "right"), ("uni segment", "left"), ("uni transcript", "left"), ("uni end delay", "right"),
                    ("bi transcript", "left"), ("bi wait (held)", "right")) if self.transcripts else
                   (("#", "right"), ("uni segment", "left"), ("uni end delay", "right"), ("bi segments", "left"),
                    ("bi wait (held)", "right")))
        for name, justify in columns:
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        for row in self.rows:
            table.add_row(*[row[name] for name, _ in columns])
        parts: list[RenderableType] = [Text(self.title, style="bold"), meter]
        if self.transcripts:
            parts.append(Text(f"uni  {self.partial + '…' if self.partial else self.uni_text}", style="bold green"))
            if self.bi:
                parts.append(Text(f"bi   {self.bi_text}", style="bold"))
        parts.append(table)
        if last is not None:
            faults = last.overflows + last.dropped_blocks
            parts.append(Text(
                f"stream {last.stream_s:.1f} s · last block took {1000 * last.proc_s:.1f} ms · "
                f"overflows {last.overflows} · dropped {last.dropped_blocks}",
                style="bold red" if faults else "grey50"))
        if self.summary is not None:
            parts.append(Text("\n".join(summary_lines(self.summary))))
        return Group(*parts)

    def export_text(self, width: int = 100) -> str:
        """The current screen as plain text (for README captures)."""
        console = Console(record=True, file=io.StringIO(), width=width, color_system=None)
        console.print(self.render())
        return console.export_text()
