"""Digits in ``streamseq mic``: the uni model's partial transcript as digits are emitted, each utterance's
final uni transcript when its end of speech is decided, and the bi model's transcript after that.

The live pipeline (:class:`~streamseq.apps.live.LivePipeline`) segments the stream with the uni
model's speech output and calls :class:`LiveDecoding` in stream order (the ``TaskDecoding`` there).
Times are stream seconds. A digit is emitted as its spike's first frame comes back (the task's
:class:`~streamseq.tasks.digits.decoder.DigitDecoder` rules), decided once that frame and the
model's output delay were heard; it belongs to the utterance open then (or the next one). An
utterance's uni transcript is final when the pipeline's segment closes; ``wait_s`` is from the
segment's end to that decision. The bi model decodes its outputs over the utterance (from the
pre-roll before the start to the uni decision) with the same rules; its ``wait_s`` is from the same
segment end to its decision, with ``compute_s`` the wall time of its model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from streamseq.models.recurrent import FrameModel
from streamseq.tasks.digits.decoder import DigitDecoder
from streamseq.tasks.vad.postprocess import SegmenterConfig

__all__ = ["DigitPartial", "DigitTranscript", "LiveDecoding"]


@dataclass(frozen=True)
class DigitPartial:
    """The uni model emitted ``digit`` (its spike starts at ``time_s``); ``text``: the utterance's digits so far."""

    utterance: int
    digit: str
    time_s: float
    decided_s: float
    text: str
    score: float
    model: Literal["uni"] = "uni"
    final: bool = False

    def line(self) -> str:
        return (f"[{self.decided_s:7.2f} s] uni #{self.utterance} … {self.text} (digit {self.digit} from "
                f"{self.time_s:.2f} s, +{self.decided_s - self.time_s:.2f} s)")


@dataclass(frozen=True)
class DigitTranscript:
    """A final transcript of utterance ``utterance`` (0: digits outside any utterance) by ``model``.

    ``digits``: ``(digit, spike start s)`` each; ``end_s``: the uni segment's end; ``wait_s``: from there
    to ``decided_s``; ``compute_s``: wall seconds of the bi model (None for uni)."""

    model: Literal["uni", "bi"]
    utterance: int
    text: str
    digits: tuple[tuple[str, float], ...]
    end_s: float
    decided_s: float
    wait_s: float
    compute_s: float | None = None
    at_stream_end: bool = False
    final: bool = True

    def line(self) -> str:
        text = self.text or "(no digits)"
        if self.model == "bi":
            return (f"[{self.decided_s:7.2f} s] bi  #{self.utterance} transcript {text}, wait {self.wait_s:.2f} s "
                    f"after the end (compute {1000 * (self.compute_s or 0.0):.0f} ms)")
        if not self.utterance:
            return f"[{self.decided_s:7.2f} s] uni digits outside any utterance {text}, at the end of the stream"
        when = "closed by the end of the stream" if self.at_stream_end else f"wait {self.wait_s:.2f} s after the end"
        return f"[{self.decided_s:7.2f} s] uni #{self.utterance} transcript {text}, {when}"


class LiveDecoding:
    """Digits beside the live segments of one stream: uni ``model``, optional ``bi``, the pipeline's ``segmenter``."""

    def __init__(self, uni: FrameModel, bi: FrameModel | None, segmenter: SegmenterConfig) -> None:
        self.segmenter = segmenter
        self.decoder = DigitDecoder(segmenter, uni.labels)  # its own utterance ends are the pipeline's segments
        self.bi_labels = None if bi is None else bi.labels
        self.pending: list[tuple[str, float]] = []  # the open utterance's digits: (digit, spike start s)
        self.partials: list[DigitPartial] = []
        self.transcripts: list[DigitTranscript] = []

    def push(self, values: np.ndarray, utterance: int, decided_s: Callable[[int], float]) -> list[DigitPartial]:
        events = []
        for e in self.decoder.push(values):
            if e.kind == "digit":
                self.pending.append((e.digit, e.time))
                events.append(DigitPartial(utterance, e.digit, e.time, decided_s(e.frame + 1),
                                           "".join(d for d, _ in self.pending), e.score))
        self.partials += events
        return events

    def close(self, utterance: int, decided_s: float, end_s: float, at_stream_end: bool) -> list[DigitTranscript]:
        digits, self.pending = tuple(self.pending), []
        return self._final(DigitTranscript("uni", utterance, "".join(d for d, _ in digits), digits, end_s, decided_s,
                                           decided_s - end_s, at_stream_end=at_stream_end))

    def bi(self, utterance: int, values: np.ndarray, origin_s: float, decided_s: float, end_s: float,
           compute_s: float) -> list[DigitTranscript]:
        if self.bi_labels is None:
            raise RuntimeError("bi outputs came to a LiveDecoding made without a bi model")
        decoder = DigitDecoder(self.segmenter, self.bi_labels)
        digits = tuple((e.digit, origin_s + e.time) for e in decoder.push(values) + decoder.flush()
                       if e.kind == "digit")
        return self._final(DigitTranscript("bi", utterance, "".join(d for d, _ in digits), digits, end_s, decided_s,
                                           decided_s - end_s, compute_s))

    def finish(self, decided_s: float) -> list[DigitTranscript]:
        """Digits that no segment closed (the speech output stayed low) end with the stream, as utterance 0."""
        self.decoder.flush()
        if not self.pending:
            return []
        digits, self.pending = tuple(self.pending), []
        return self._final(DigitTranscript("uni", 0, "".join(d for d, _ in digits), digits, decided_s, decided_s, 0.0,
                                           at_stream_end=True))

    def _final(self, transcript: DigitTranscript) -> list[DigitTranscript]:
        self.transcripts.append(transcript)
        return [transcript]

    def to_dict(self) -> dict[str, Any]:
        """``digits``: every uni emission; ``transcripts``: every final transcript, uni and bi, in decision order."""
        return {"digits": [asdict(p) for p in self.partials],
                "transcripts": [asdict(t) | {"digits": [list(d) for d in t.digits]} for t in self.transcripts]}
