"""Incremental VAD post-processing: per-frame speech probabilities -> speech segments.

One `Segmenter` serves streaming and offline use alike; it decides frame by frame (runs of
frames that decide nothing are consumed in bulk, with the same result), so segments and events
do not depend on how the stream is chunked.

Rules (frame i covers [i * frame_shift_s, (i + 1) * frame_shift_s)):
  * speech starts at the first frame with prob >= onset and continues while prob >= offset;
  * it ends when prob < offset for min_silence_s; the end is the first frame of that silence
    run, and shorter gaps are bridged;
  * a segment whose extent (onset frame .. last frame >= offset) is shorter than min_speech_s
    is discarded;
  * a segment longer than max_segment_s is cut at its lowest-probability frame among those
    that leave the first piece between half and all of max_segment_s long (the latest such
    frame on ties); that frame starts the next piece, which is kept whatever its length. The
    cut is decided as soon as the extent exceeds max_segment_s, and repeats if needed;
  * pad_s is then added at both ends of each segment (clipped at 0 and at the end of the
    stream) but not at cut points, so pieces of one cut segment stay adjacent. The config
    requires 2 * pad_s <= min_silence_s, so padded segments never overlap.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class SegmenterConfig:
    """Thresholds (probabilities) and durations (seconds) of the segmenter.

    Durations are rounded to whole frames; min_speech_s, min_silence_s and max_segment_s
    count as at least one frame.
    """

    onset: float = 0.5
    offset: float = 0.35
    min_speech_s: float = 0.25
    min_silence_s: float = 0.30
    pad_s: float = 0.05
    max_segment_s: float = 30.0
    frame_shift_s: float = 0.01

    def __post_init__(self) -> None:
        if not 0.0 <= self.offset <= self.onset <= 1.0:
            raise ValueError(
                "expected 0 <= offset <= onset <= 1 (hysteresis), "
                f"got offset={self.offset}, onset={self.onset}"
            )
        if not (math.isfinite(self.frame_shift_s) and self.frame_shift_s > 0):
            raise ValueError(f"expected frame_shift_s > 0, got {self.frame_shift_s}")
        for name in ("min_speech_s", "min_silence_s", "pad_s", "max_segment_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"expected finite {name} >= 0 (seconds), got {value}")
        if self.min_speech_frames > self.max_segment_frames:
            raise ValueError(
                "expected min_speech_s <= max_segment_s, "
                f"got min_speech_s={self.min_speech_s}, max_segment_s={self.max_segment_s}"
            )
        if 2 * self.pad_frames > self.min_silence_frames:
            raise ValueError(
                "expected 2 * pad_s <= min_silence_s (padded segments must not overlap), "
                f"got pad_s={self.pad_s}, min_silence_s={self.min_silence_s}"
            )

    def _frames(self, seconds: float) -> int:
        return round(seconds / self.frame_shift_s)

    @property
    def min_speech_frames(self) -> int:
        return max(1, self._frames(self.min_speech_s))

    @property
    def min_silence_frames(self) -> int:
        return max(1, self._frames(self.min_silence_s))

    @property
    def pad_frames(self) -> int:
        return self._frames(self.pad_s)

    @property
    def max_segment_frames(self) -> int:
        return max(1, self._frames(self.max_segment_s))


#: The settings a model's ``task_config`` may hold (the frame grid is the model's own).
SETTINGS = tuple(f.name for f in fields(SegmenterConfig) if f.name != "frame_shift_s")


def configure(defaults: SegmenterConfig, *layers: Mapping | None, frame_shift_s: float,
              what: str = "segmenter") -> SegmenterConfig:
    """``defaults`` with each settings layer on top (e.g. a model's ``task_config``, then a user's
    overrides), on the frame grid ``frame_shift_s``; unknown keys fail, naming ``what``."""
    settings = {k: v for k, v in asdict(defaults).items() if k in SETTINGS}
    for layer in layers:
        settings.update(layer or {})
    if unknown := sorted(set(settings) - set(SETTINGS)):
        raise ValueError(f"unknown {what} settings {unknown} (in the model's task_config or the overrides); "
                         f"known: {', '.join(SETTINGS)}")
    return SegmenterConfig(**settings, frame_shift_s=frame_shift_s)


@dataclass
class Segment:
    """A speech segment after padding: frames [start_frame, end_frame), seconds [start, end).

    mean_prob is the mean speech probability over those frames.
    """

    start: float
    end: float
    mean_prob: float
    start_frame: int
    end_frame: int


@dataclass
class SegmentEvent:
    """A segment boundary decision.

    time: the (padded) boundary in seconds. frame: frames consumed when the decision was
    made, so latency = frame * frame_shift_s - time. "start" is provisional (emitted once the
    segment reaches min_speech_s, or at a max-length cut); "end" carries the final segment.
    """

    kind: Literal["start", "end"]
    time: float
    frame: int
    segment: Segment | None = None


@dataclass
class SegmenterState:
    """Everything a Segmenter remembers; frame indices are absolute (0 = first frame).

    Memory is bounded: `recent` holds pad_frames probs, `probs` at most
    pad + max_segment + min_silence frames.
    """

    recent: deque[float]  # probs of the last pad_frames frames (for start padding)
    frames_seen: int = 0
    open_start: int | None = None  # onset (or cut) frame of the open segment; None when idle
    padded_start: int = 0  # first frame of the open segment after padding
    speech_end: int = 0  # 1 + last frame with prob >= offset in the open segment
    confirmed: bool = False  # the open segment's "start" event has been emitted
    probs: list[float] = field(default_factory=list)  # frames padded_start .. frames_seen - 1


class Segmenter:
    """Streaming hysteresis segmenter; `push` chunks of probs, then `flush` at end of stream."""

    def __init__(self, config: SegmenterConfig = SegmenterConfig()) -> None:
        self.config = config
        self._min_speech, self._min_silence = config.min_speech_frames, config.min_silence_frames
        self._pad, self._max_segment = config.pad_frames, config.max_segment_frames
        self.reset()

    def reset(self) -> None:
        """Forget everything and start a new stream at frame 0."""
        self.state = SegmenterState(recent=deque(maxlen=self._pad))

    @property
    def frames_seen(self) -> int:
        """Number of frames consumed since the stream began."""
        return self.state.frames_seen

    def push(self, probs: np.ndarray) -> list[SegmentEvent]:
        """Consume speech probabilities, shape (n,), in [0, 1]; return the events they decide."""
        values = _validate_probs(probs)
        events: list[SegmentEvent] = []
        i, n = 0, len(values)
        while i < n:  # runs of frames that decide nothing in bulk, the others one by one
            i = self._skip_quiet(values, i)
            if i < n:
                self._step(values[i], events)
                i += 1
        return events

    def _skip_quiet(self, values: list[float], i: int) -> int:
        """Consume the frames from ``values[i]`` on that decide nothing (no onset, confirmation, cut
        or close), as :meth:`_step` would; return the index of the first that may decide (or the end)."""
        st, n, first = self.state, len(values), i
        if st.open_start is None:
            onset = self.config.onset
            while i < n and values[i] < onset:
                i += 1
        else:
            offset, silence, end = self.config.offset, self._min_silence, st.speech_end
            base = st.frames_seen - i + 1  # frames seen once values[i] is consumed, minus i
            cut_from = st.open_start + self._max_segment + 1  # speech at this extent is cut
            if not st.confirmed:  # speech at this extent confirms the start
                cut_from = min(cut_from, st.open_start + self._min_speech)
            while i < n:
                if values[i] >= offset:
                    if base + i >= cut_from:
                        break
                    end = base + i
                elif base + i - end >= silence:
                    break
                i += 1
            st.speech_end = end
            st.probs.extend(values[first:i])
        if i > first:
            st.frames_seen += i - first
            if self._pad:
                st.recent.extend(values[max(first, i - self._pad) : i])
        return i

    def flush(self) -> list[SegmentEvent]:
        """End the stream: close an open segment (dropped if shorter than min_speech_s).

        The segmenter is then reset, ready for a new stream.
        """
        st = self.state
        events: list[SegmentEvent] = []
        if st.open_start is not None:
            self._close(min(st.speech_end + self._pad, st.frames_seen), events)
        self.reset()
        return events

    def _step(self, p: float, events: list[SegmentEvent]) -> None:
        cfg, st = self.config, self.state
        i = st.frames_seen
        st.frames_seen = i + 1
        if st.open_start is None:
            if p >= cfg.onset:
                st.open_start, st.speech_end, st.confirmed = i, i + 1, False
                st.padded_start = i - len(st.recent)
                st.probs = [*st.recent, p]
                self._on_speech(events)
        else:
            st.probs.append(p)
            if p >= cfg.offset:
                st.speech_end = i + 1
                self._on_speech(events)
            elif st.frames_seen - st.speech_end >= self._min_silence:
                self._close(st.speech_end + self._pad, events)
        st.recent.append(p)

    def _on_speech(self, events: list[SegmentEvent]) -> None:
        """Confirm the open segment once long enough; cut it while longer than the maximum."""
        st = self.state
        assert st.open_start is not None
        if not st.confirmed and st.speech_end - st.open_start >= self._min_speech:
            st.confirmed = True
            events.append(self._event("start", st.padded_start))
        while st.speech_end - st.open_start > self._max_segment:
            self._cut(events)

    def _cut(self, events: list[SegmentEvent]) -> None:
        """Split the open segment at its lowest-probability frame in the allowed window."""
        cfg, st = self.config, self.state
        assert st.open_start is not None
        lo = st.open_start + math.ceil(cfg.max_segment_frames / 2) - st.padded_start
        hi = st.open_start + cfg.max_segment_frames - st.padded_start
        window = st.probs[lo : hi + 1]
        cut = lo + min(reversed(range(len(window))), key=window.__getitem__)  # latest on ties
        events.append(self._event("end", st.padded_start + cut, self._segment(cut)))
        st.probs = st.probs[cut:]
        st.padded_start = st.open_start = st.padded_start + cut
        events.append(self._event("start", st.padded_start))

    def _close(self, end_frame: int, events: list[SegmentEvent]) -> None:
        """Close the open segment at padded end `end_frame`; emit it if confirmed."""
        st = self.state
        if st.confirmed:
            segment = self._segment(end_frame - st.padded_start)
            events.append(self._event("end", end_frame, segment))
        st.open_start, st.confirmed, st.probs = None, False, []

    def _segment(self, n_frames: int) -> Segment:
        """The first n_frames of the open segment's (padded) span as a Segment."""
        st, shift = self.state, self.config.frame_shift_s
        start, end = st.padded_start, st.padded_start + n_frames
        mean = math.fsum(st.probs[:n_frames]) / n_frames
        return Segment(start * shift, end * shift, mean, start, end)

    def _event(
        self, kind: Literal["start", "end"], boundary_frame: int, segment: Segment | None = None
    ) -> SegmentEvent:
        time = boundary_frame * self.config.frame_shift_s
        return SegmentEvent(kind, time, self.state.frames_seen, segment)


def _validate_probs(probs: np.ndarray) -> list[float]:
    """``probs`` (n,) as a list of floats, checked: finite and in [0, 1]."""
    values = np.asarray(probs, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"expected probs of shape (n,), got shape {values.shape}")
    out = values.tolist()  # checked as a list: cheaper than numpy for the few frames of a live block
    if not out or (0.0 <= min(out) and max(out) <= 1.0 and math.isfinite(sum(out))):  # NaN fails the sum
        return out
    if not np.all(np.isfinite(values)):
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise ValueError(f"expected finite probs, got {values[bad]} at index {bad}")
    raise ValueError(f"expected probs in [0, 1], got values in [{values.min()}, {values.max()}]")


def segments_from_probs(
    probs: np.ndarray, config: SegmenterConfig = SegmenterConfig()
) -> list[Segment]:
    """Offline segmentation of probs, shape (T,): one Segmenter, push everything, flush."""
    segmenter = Segmenter(config)
    events = segmenter.push(probs) + segmenter.flush()
    return [e.segment for e in events if e.kind == "end" and e.segment is not None]
