"""What ``streamseq process`` writes for VAD: speech segments as JSON, CSV, RTTM, Audacity labels,
SRT or a table, and per-frame speech probabilities.

Every renderer takes the result dictionary of one file (the JSON format itself)::

    {"file": str, "duration": s, "sample_rate": Hz, "model": str,
     "segments": [{"start": s, "end": s, "mean_prob": p}, ...]}

and returns text. Times are seconds (3 decimals, Audacity 6), probabilities 4 decimals.
Formats that name the file (json lines, csv, rttm, table) can be concatenated over files.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from streamseq.tasks.formats import json_text, rttm_uri, srt_time
from streamseq.tasks.vad.postprocess import Segment, SegmentEvent

SPEECH = "speech"  # the VAD task's one output column, and the label its segments carry



def _csv(result: dict, *, first: bool, many: bool) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if first:
        writer.writerow(["file", "start", "end", "mean_prob"])
    for s in result["segments"]:
        writer.writerow([result["file"], f"{s['start']:.3f}", f"{s['end']:.3f}", f"{s['mean_prob']:.4f}"])
    return buf.getvalue()



def _rttm(result: dict, *, first: bool, many: bool) -> str:
    uri = rttm_uri(result["file"])
    return "".join(
        f"SPEAKER {uri} 1 {s['start']:.3f} {s['end'] - s['start']:.3f} <NA> <NA> {SPEECH} <NA> <NA>\n"
        for s in result["segments"]
    )


def _audacity(result: dict, *, first: bool, many: bool) -> str:
    return "".join(f"{s['start']:.6f}\t{s['end']:.6f}\t{SPEECH}\n" for s in result["segments"])



def _srt(result: dict, *, first: bool, many: bool) -> str:
    return "".join(
        f"{i}\n{srt_time(s['start'])} --> {srt_time(s['end'])}\n{SPEECH}\n\n"
        for i, s in enumerate(result["segments"], 1)
    )


def _table(result: dict, *, first: bool, many: bool) -> str:
    segs, duration = result["segments"], result["duration"]
    speech = sum(s["end"] - s["start"] for s in segs)
    lines = [] if first else [""]
    lines.append(f"{result['file']}  ({duration:.2f} s, {result['sample_rate']} Hz, model {result['model']})")
    if segs:
        lines.append(f"{'#':>5} {'start':>10} {'end':>10} {'length':>8} {'prob':>6}")
        lines += [
            f"{i:>5} {s['start']:>10.3f} {s['end']:>10.3f} {s['end'] - s['start']:>8.3f} {s['mean_prob']:>6.3f}"
            for i, s in enumerate(segs, 1)
        ]
    share = 100 * speech / duration if duration else 0.0
    lines.append(f"{SPEECH}: {speech:.2f} s in {len(segs)} segment(s), {share:.1f}% of the file")
    return "\n".join(lines) + "\n"


_RENDERERS: dict[str, Callable[..., str]] = {
    "json": json_text, "csv": _csv, "rttm": _rttm, "audacity": _audacity, "srt": _srt, "table": _table,
}


class VADWriters:
    """The VAD task's :class:`~streamseq.tasks.base.Writers`."""

    extensions: Mapping[str, str] = {
        "json": ".json", "csv": ".csv", "rttm": ".rttm", "audacity": ".txt", "srt": ".srt", "table": ".txt"}
    multi_file: tuple[str, ...] = ("json", "csv", "rttm", "table")  # can share one stdout (json as JSON lines)

    def result(self, events: list[Any]) -> dict:
        """``{"segments": [...]}`` from the segmenter's "end" events (seconds 3 decimals, prob 4)."""
        return {"segments": [{"start": round(s.start, 3), "end": round(s.end, 3), "mean_prob": round(s.mean_prob, 4)}
                             for s in _segments(events)]}

    def render(self, result: dict, fmt: str, *, first: bool = True, many: bool = False) -> str:
        """Text of one file's result in ``fmt``.

        ``first``: this is the first file on a shared output (CSV header, table spacing).
        ``many``: several files share the output (JSON becomes one compact line per file).
        """
        if fmt not in _RENDERERS:
            raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(_RENDERERS)}")
        return _RENDERERS[fmt](result, first=first, many=many)

    def frames(self, values: np.ndarray, labels: list[str]) -> tuple[np.ndarray, list[str]]:
        """The speech probability ``(T,)`` of each frame, as column ``prob``."""
        return values[:, speech_column(labels)], ["prob"]

    def totals(self, events: list[Any]) -> dict[str, float]:
        """``{"speech_s": seconds inside segments}``."""
        return {"speech_s": sum(s.end - s.start for s in _segments(events))}

    def describe(self, totals: dict[str, float]) -> str:
        return f"{totals.get('speech_s', 0.0) / 3600:.3f} h {SPEECH}"


def _segments(events: list[Any]) -> list[Segment]:
    return [e.segment for e in events if isinstance(e, SegmentEvent) and e.kind == "end" and e.segment is not None]


def speech_column(labels: list[str]) -> int:
    """Index of the speech probability among a VAD model's output ``labels``."""
    if SPEECH not in labels:
        raise ValueError(f"expected a VAD model with a {SPEECH!r} output; its outputs are {labels}")
    return labels.index(SPEECH)
