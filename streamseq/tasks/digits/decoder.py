"""Streaming greedy CTC decoding of spoken digits: per-frame log-probabilities in, digits and
finished utterances out, the same events for any chunking of the frames.

Dimension legend: n frames of one chunk, C outputs per frame (``blank``, ``0`` ... ``9``).

Rule, frame by frame (``best`` = the frame's most probable output):

* a digit is emitted at the first frame of its CTC spike: ``best`` is a digit and differs from the
  previous frame's ``best`` (a blank or another digit came between; the same digit on
  consecutive frames is one digit, as CTC collapses it). Its time is the frame's start,
  ``frame * frame_shift_s``; its score is the digit's probability on that frame.
* an utterance opens with its first digit and ends once ``end_silence_s`` of consecutive frames
  are blank-dominated (blank probability > ``blank_threshold``); it ends where that run began.
  The issue asks for the VAD segmenter's end-of-speech here; this blank-run rule stands in for it.
* :meth:`DigitDecoder.flush` ends an open utterance at the last frame and starts a new stream.

A digit's ``end`` in a finished utterance is the end of its spike (the frames it stayed ``best``):
where the network fired, not how long the word lasted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

DIGIT_LABELS = ["blank", *"0123456789"]  # the digits task's outputs, blank first


@dataclass(frozen=True)
class DecoderConfig:
    """Utterance end: ``end_silence_s`` of frames with blank probability > ``blank_threshold``."""

    blank_threshold: float = 0.9
    end_silence_s: float = 0.5
    frame_shift_s: float = 0.01

    def __post_init__(self) -> None:
        if not 0.5 <= self.blank_threshold < 1.0:
            raise ValueError(f"blank_threshold must be in [0.5, 1) (a frame whose best output is a digit is never "
                             f"blank-dominated); received {self.blank_threshold}")
        if self.end_silence_s <= 0 or self.frame_shift_s <= 0:
            raise ValueError(f"end_silence_s and frame_shift_s must be > 0 s; received {self.end_silence_s}, "
                             f"{self.frame_shift_s}")

    @property
    def end_frames(self) -> int:
        return max(1, round(self.end_silence_s / self.frame_shift_s))


@dataclass(frozen=True)
class Digit:
    """One recognised digit: its spike's ``start`` and ``end`` (s) and the digit's probability at ``start``."""

    digit: str
    start: float
    end: float
    score: float


@dataclass(frozen=True)
class Utterance:
    """A finished digit string: ``start`` (its first digit) and ``end`` (where the closing blank run began), s."""

    digits: tuple[Digit, ...]
    start: float
    end: float

    @property
    def text(self) -> str:
        return "".join(d.digit for d in self.digits)


@dataclass(frozen=True)
class DigitEvent:
    """``"digit"``: a digit as its spike appears (``frame``: the spike's first frame). ``"end"``: utterance
    ``utterance`` finished, decided on ``frame`` (the last frame of the closing blank run, or the
    stream's frame count at flush); ``transcript`` holds it. ``time`` is ``frame * frame_shift_s``."""

    kind: Literal["digit", "end"]
    frame: int
    time: float
    utterance: int
    digit: str = ""
    score: float = 0.0
    transcript: Utterance | None = None


class DigitDecoder:
    """Greedy CTC over log-probabilities ``(n, C)`` of ``labels`` (``blank`` and the digits), one stream."""

    def __init__(self, config: DecoderConfig = DecoderConfig(), labels: list[str] = DIGIT_LABELS) -> None:
        if not labels or labels[0] != "blank" or set(labels[1:]) - set("0123456789"):
            raise ValueError(f"expected outputs 'blank' then digits '0'...'9'; received {labels}")
        self.config, self.labels = config, list(labels)
        self.settings = {"digits": asdict(config)}
        self.reset()

    def reset(self) -> None:
        """Forget the stream: frame 0, no open utterance."""
        self.frame = 0
        self.utterance = 0
        self.previous = 0  # best output of the previous frame
        self.digits: list[list] = []  # open utterance: [digit, first frame, spike frames, score]
        self.blank_run = 0  # consecutive blank-dominated frames, counted while an utterance is open

    def push(self, values: np.ndarray) -> list[DigitEvent]:
        """Consume the next frames' log-probabilities ``(n, C)``; the digits and utterance ends they decide."""
        values = np.asarray(values)
        if values.ndim != 2 or values.shape[1] != len(self.labels):
            raise ValueError(f"expected log-probabilities of shape (n, {len(self.labels)}); received {values.shape}")
        best = values.argmax(axis=1)
        blank = np.exp(values[:, 0]) > self.config.blank_threshold
        shift, events = self.config.frame_shift_s, list[DigitEvent]()
        for b, dominated, row in zip(best.tolist(), blank.tolist(), values, strict=True):
            if b and b != self.previous:
                digit, score = self.labels[b], float(np.exp(row[b]))
                self.digits.append([digit, self.frame, 1, score])
                events.append(DigitEvent("digit", self.frame, self.frame * shift, self.utterance, digit, score))
            elif b and self.digits:
                self.digits[-1][2] += 1
            if self.digits:
                self.blank_run = self.blank_run + 1 if dominated else 0
                if self.blank_run >= self.config.end_frames:
                    events.append(self._end(self.frame, self.frame + 1 - self.blank_run))
            self.previous = b
            self.frame += 1
        return events

    def flush(self) -> list[DigitEvent]:
        """End of stream: the open utterance (if any) ends; the decoder starts a new stream."""
        events = [self._end(self.frame, self.frame - self.blank_run)] if self.digits else []
        self.reset()
        return events

    def _end(self, frame: int, end_frame: int) -> DigitEvent:
        shift = self.config.frame_shift_s
        digits = tuple(Digit(d, f * shift, (f + n) * shift, s) for d, f, n, s in self.digits)
        event = DigitEvent("end", frame, frame * shift, self.utterance,
                           transcript=Utterance(digits, digits[0].start, end_frame * shift))
        self.digits, self.blank_run, self.utterance = [], 0, self.utterance + 1
        return event


def decode(values: np.ndarray, config: DecoderConfig = DecoderConfig()) -> list[DigitEvent]:
    """Every event of one whole stream of log-probabilities ``(T, C)`` (push all, then flush)."""
    decoder = DigitDecoder(config)
    return decoder.push(values) + decoder.flush()
