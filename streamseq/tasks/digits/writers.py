"""What ``streamseq process`` writes for spoken digits: per-utterance transcripts with per-digit times
as JSON, CSV, SRT, NIST CTM or a table, and per-frame output probabilities.

Every renderer takes the result dictionary of one file (the JSON format itself)::

    {"file": str, "duration": s, "sample_rate": Hz, "model": str,
     "utterances": [{"start": s, "end": s, "text": "4155550123",
                     "digits": [{"digit": "4", "start": s, "end": s, "score": p}, ...]}, ...]}

and returns text. Times are seconds (3 decimals), scores 4 decimals. A digit's start is the
first frame of its CTC spike and its end the end of the spike (see
:mod:`streamseq.tasks.digits.decoder`), so CTM durations are spike lengths, not word lengths.
CTM (``<file> <channel> <start> <duration> <word> <confidence>``, one line per digit) names the
file like RTTM does (its stem, whitespace as ``_``) on channel 1, for ASR scoring tools (sclite).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from streamseq.tasks.digits.decoder import DigitEvent, Utterance
from streamseq.tasks.formats import json_text, rttm_uri, srt_time


def _csv(result: dict, *, first: bool, many: bool) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if first:
        writer.writerow(["file", "utterance", "digit", "start", "end", "score"])
    for i, u in enumerate(result["utterances"]):
        for d in u["digits"]:
            writer.writerow([result["file"], i, d["digit"], f"{d['start']:.3f}", f"{d['end']:.3f}",
                             f"{d['score']:.4f}"])
    return buf.getvalue()


def _srt(result: dict, *, first: bool, many: bool) -> str:
    return "".join(f"{i}\n{srt_time(u['start'])} --> {srt_time(u['end'])}\n{u['text']}\n\n"
                   for i, u in enumerate(result["utterances"], 1))


def _ctm(result: dict, *, first: bool, many: bool) -> str:
    uri = rttm_uri(result["file"])
    return "".join(f"{uri} 1 {d['start']:.3f} {d['end'] - d['start']:.3f} {d['digit']} {d['score']:.4f}\n"
                   for u in result["utterances"] for d in u["digits"])


def _table(result: dict, *, first: bool, many: bool) -> str:
    utts = result["utterances"]
    lines = [] if first else [""]
    lines.append(f"{result['file']}  ({result['duration']:.2f} s, {result['sample_rate']} Hz, model {result['model']})")
    lines += [f"{i:>5} {u['start']:>9.2f} {u['end']:>9.2f}  {u['text']}" for i, u in enumerate(utts, 1)]
    lines.append(f"{sum(len(u['digits']) for u in utts)} digit(s) in {len(utts)} utterance(s)")
    return "\n".join(lines) + "\n"


_RENDERERS: dict[str, Callable[..., str]] = {"json": json_text, "csv": _csv, "srt": _srt, "ctm": _ctm, "table": _table}


class DigitWriters:
    """The digits task's :class:`~streamseq.tasks.base.Writers`."""

    extensions: Mapping[str, str] = {"json": ".json", "csv": ".csv", "srt": ".srt", "ctm": ".ctm", "table": ".txt"}
    multi_file: tuple[str, ...] = ("json", "csv", "ctm", "table")  # can share one stdout (json as JSON lines)

    def result(self, events: list[Any]) -> dict:
        """``{"utterances": [...]}`` from the decoder's "end" events."""
        return {"utterances": [{"start": round(u.start, 3), "end": round(u.end, 3), "text": u.text,
                                "digits": [{"digit": d.digit, "start": round(d.start, 3), "end": round(d.end, 3),
                                            "score": round(d.score, 4)} for d in u.digits]}
                               for u in _utterances(events)]}

    def render(self, result: dict, fmt: str, *, first: bool = True, many: bool = False) -> str:
        """Text of one file's result in ``fmt``; ``first``: first file on a shared output (CSV header),
        ``many``: several files share it (JSON becomes one line per file)."""
        if fmt not in _RENDERERS:
            raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(_RENDERERS)}")
        return _RENDERERS[fmt](result, first=first, many=many)

    def frames(self, values: np.ndarray, labels: list[str]) -> tuple[np.ndarray, list[str]]:
        """The probability ``(T, C)`` of each output on each frame (the model gives log-probabilities)."""
        return np.exp(values), list(labels)

    def totals(self, events: list[Any]) -> dict[str, float]:
        utts = _utterances(events)
        return {"digits": float(sum(len(u.digits) for u in utts)), "utterances": float(len(utts))}

    def describe(self, totals: dict[str, float]) -> str:
        return f"{totals.get('digits', 0):.0f} digit(s) in {totals.get('utterances', 0):.0f} utterance(s)"


def _utterances(events: list[Any]) -> list[Utterance]:
    return [e.transcript for e in events if isinstance(e, DigitEvent) and e.kind == "end" and e.transcript is not None]
