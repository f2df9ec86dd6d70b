import copy
import dataclasses
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamseq.tasks.vad.postprocess import (
    Segmenter,
    SegmenterConfig,
    segments_from_probs,
)

# 10 ms frames: min speech 3 frames, min silence 4 frames, no padding, no cut in practice.
SMALL = SegmenterConfig(min_speech_s=0.03, min_silence_s=0.04, pad_s=0.0, max_segment_s=10.0)


def frames(segments):
    return [(s.start_frame, s.end_frame) for s in segments]


def run_chunked(probs, config, bounds):
    """Events from pushing probs split at the (sorted) indices in bounds, then flushing."""
    segmenter = Segmenter(config)
    events = []
    edges = [0, *bounds, len(probs)]
    for a, b in pairwise(edges):
        events += segmenter.push(probs[a:b])
    return events + segmenter.flush()


LEVELS = [0.0, 0.2, 0.34, 0.35, 0.36, 0.49, 0.5, 0.51, 0.9, 1.0]
runs = st.lists(
    st.tuples(
        st.one_of(st.sampled_from(LEVELS), st.floats(0.0, 1.0)),
        st.one_of(st.integers(1, 6), st.integers(20, 80)),
    ),
    max_size=25,
)
configs = st.builds(
    SegmenterConfig,
    onset=st.sampled_from([0.5, 0.6]),
    offset=st.sampled_from([0.35, 0.5]),
    min_speech_s=st.sampled_from([0.0, 0.01, 0.03, 0.1]),
    min_silence_s=st.sampled_from([0.04, 0.1]),
    pad_s=st.sampled_from([0.0, 0.01, 0.02]),
    max_segment_s=st.sampled_from([0.1, 0.15, 0.5]),
)


@st.composite
def stream_and_partition(draw):
    probs = np.array([v for v, n in draw(runs) for _ in range(n)], dtype=np.float64)
    n = len(probs)
    bounds = draw(
        st.one_of(
            st.just(list(range(1, n))),  # 1-frame chunks
            st.just([]),  # one chunk bigger than the stream, pushed via the split path
            st.lists(st.integers(0, n), max_size=12).map(sorted),  # incl. empty chunks
        )
    )
    return probs, bounds


@settings(max_examples=150, deadline=None)
@given(data=stream_and_partition(), config=configs)
def test_events_and_segments_are_independent_of_chunking(data, config):
    probs, bounds = data
    whole = Segmenter(config)
    reference = whole.push(probs) + whole.flush()
    chunked = run_chunked(probs, config, bounds)
    key = [(e.kind, e.time, e.frame) for e in reference]
    assert [(e.kind, e.time, e.frame) for e in chunked] == key
    assert chunked == reference
    offline = segments_from_probs(probs, config)
    assert offline == [e.segment for e in reference if e.kind == "end"]


@settings(max_examples=150, deadline=None)
@given(data=stream_and_partition(), config=configs)
def test_bulk_runs_decide_exactly_as_frame_by_frame(data, config):
    """push() consumes runs of frames that decide nothing in bulk; events and state must be those
    of the frame-by-frame rule (Segmenter._step on every frame)."""
    probs, bounds = data
    stepped, frame_events = Segmenter(config), []
    for p in probs.tolist():
        stepped._step(p, frame_events)
    bulk = Segmenter(config)
    edges = [0, *bounds, len(probs)]
    bulk_events = [e for a, b in pairwise(edges) for e in bulk.push(probs[a:b])]
    assert bulk_events == frame_events
    assert bulk.state == stepped.state
    assert bulk.flush() == stepped.flush()


@settings(max_examples=150, deadline=None)
@given(data=stream_and_partition(), config=configs)
def test_events_alternate_and_segments_respect_limits(data, config):
    probs, _ = data
    segmenter = Segmenter(config)
    events = segmenter.push(probs) + segmenter.flush()
    assert [e.kind for e in events] == ["start", "end"] * (len(events) // 2)
    previous_end = 0
    for start, end in zip(events[::2], events[1::2], strict=True):
        seg = end.segment
        assert start.time == seg.start and end.time == seg.end
        assert start.frame <= end.frame <= len(probs)
        assert start.frame >= seg.start_frame and end.frame >= seg.end_frame  # latency >= 0
        assert previous_end <= seg.start_frame < seg.end_frame <= len(probs)
        assert seg.end_frame - seg.start_frame <= config.max_segment_frames + 2 * config.pad_frames
        assert seg.mean_prob == pytest.approx(probs[seg.start_frame : seg.end_frame].mean())
        previous_end = seg.end_frame


def test_hysteresis_keeps_segment_alive_between_offset_and_onset():
    probs = np.array([0.0] * 5 + [0.6] + [0.4] * 10 + [0.0] * 10)
    assert frames(segments_from_probs(probs, SMALL)) == [(5, 16)]
    # Without hysteresis the 0.4 frames are silence and the 1-frame run is too short.
    no_hysteresis = dataclasses.replace(SMALL, offset=0.5)
    assert segments_from_probs(probs, no_hysteresis) == []


def test_frames_between_offset_and_onset_do_not_start_speech():
    assert segments_from_probs(np.full(50, 0.45), SMALL) == []


def test_short_blips_are_dropped_without_any_event():
    segmenter = Segmenter(SMALL)
    events = segmenter.push(np.array([0.0] * 5 + [0.9] * 2 + [0.0] * 10))
    assert events + segmenter.flush() == []


def test_speech_run_of_exactly_min_speech_is_kept():
    probs = np.array([0.0] * 5 + [0.9] * 3 + [0.0] * 10)
    assert frames(segments_from_probs(probs, SMALL)) == [(5, 8)]


def test_gaps_shorter_than_min_silence_are_bridged():
    bridged = np.array([0.9] * 5 + [0.0] * 3 + [0.9] * 5 + [0.0] * 10)
    assert frames(segments_from_probs(bridged, SMALL)) == [(0, 13)]
    split = np.array([0.9] * 5 + [0.0] * 4 + [0.9] * 5 + [0.0] * 10)
    assert frames(segments_from_probs(split, SMALL)) == [(0, 5), (9, 14)]


def test_end_event_is_decided_after_min_silence_and_padding_is_applied():
    config = SegmenterConfig(min_speech_s=0.03, min_silence_s=0.04, pad_s=0.02)
    segmenter = Segmenter(config)
    events = segmenter.push(np.array([0.0] * 5 + [0.9] * 10 + [0.0] * 10))
    start, end = events
    assert (start.kind, start.frame, start.time) == ("start", 8, pytest.approx(0.03))
    assert (end.kind, end.frame, end.time) == ("end", 19, pytest.approx(0.17))
    assert (end.segment.start_frame, end.segment.end_frame) == (3, 17)
    assert end.segment.start == pytest.approx(0.03) and end.segment.end == pytest.approx(0.17)
    assert end.segment.mean_prob == pytest.approx(0.9 * 10 / 14)


def test_padding_is_clipped_at_stream_start_and_end():
    config = SegmenterConfig(min_speech_s=0.03, min_silence_s=0.04, pad_s=0.02)
    assert frames(segments_from_probs(np.array([0.9] * 6 + [0.0]), config)) == [(0, 7)]


def test_provisional_start_comes_exactly_min_speech_after_onset_frame():
    config = SegmenterConfig(pad_s=0.0)  # min_speech_s = 0.25 s = 25 frames
    probs = np.array([0.1] * 7 + [0.9] * 40)
    segmenter = Segmenter(config)
    decided_at = [i for i, p in enumerate(probs) if segmenter.push(np.array([p]))]
    assert decided_at == [7 + 25 - 1]  # the event comes with the 32nd frame
    (start,) = Segmenter(config).push(probs)
    assert start.frame == 32
    assert start.frame * config.frame_shift_s - start.time == pytest.approx(config.min_speech_s)


def test_max_length_cut_lands_on_lowest_probability_frame_in_last_half():
    config = SegmenterConfig(min_speech_s=0.03, min_silence_s=0.04, pad_s=0.02, max_segment_s=0.2)
    speech = np.full(30, 0.9)
    speech[4] = 0.36  # lowest overall, but in the first half of the 20-frame limit: ignored
    speech[14] = 0.6
    probs = np.concatenate([np.zeros(5), speech, np.zeros(10)])
    events = Segmenter(config).push(probs)
    assert [(e.kind, e.frame) for e in events] == [
        ("start", 8), ("end", 26), ("start", 26), ("end", 39)
    ]
    # Cut frame 5 + 14 = 19 starts the second piece; no padding at the cut.
    assert frames(e.segment for e in events if e.kind == "end") == [(3, 19), (19, 37)]


def test_cut_repeats_until_pieces_fit_and_memory_stays_bounded():
    config = SegmenterConfig(pad_s=0.05, max_segment_s=0.5)
    segmenter = Segmenter(config)
    ends = []
    for _ in range(100):
        ends += [e for e in segmenter.push(np.full(100, 0.9)) if e.kind == "end"]
        assert len(segmenter.state.probs) <= config.max_segment_frames + config.pad_frames + 1
        assert len(segmenter.state.recent) <= config.pad_frames
    lengths = {e.segment.end_frame - e.segment.start_frame for e in ends}
    assert lengths == {50} and len(ends) == 10_000 // 50 - 1  # ties cut as late as allowed


def test_flush_closes_open_segment_and_resets():
    config = SegmenterConfig(min_speech_s=0.03, min_silence_s=0.04, pad_s=0.02)
    segmenter = Segmenter(config)
    assert [e.kind for e in segmenter.push(np.array([0.0] * 3 + [0.9] * 10))] == ["start"]
    (end,) = segmenter.flush()
    assert (end.kind, end.frame) == ("end", 13)
    assert (end.segment.start_frame, end.segment.end_frame) == (1, 13)  # pad clipped at 13
    assert segmenter.frames_seen == 0
    assert segmenter.flush() == []


def test_flush_drops_open_segment_shorter_than_min_speech():
    segmenter = Segmenter(SMALL)
    assert segmenter.push(np.array([0.0, 0.9, 0.9])) == []
    assert segmenter.flush() == []


def test_empty_push_returns_nothing_and_consumes_nothing():
    segmenter = Segmenter(SMALL)
    assert segmenter.push(np.array([])) == []
    assert segmenter.frames_seen == 0


def test_copied_state_continues_identically():
    segmenter = Segmenter(SMALL)
    segmenter.push(np.array([0.0, 0.9, 0.9, 0.9, 0.2]))
    twin = copy.deepcopy(segmenter)
    rest = np.array([0.9, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert segmenter.push(rest) == twin.push(rest)
    assert segmenter.frames_seen == twin.frames_seen == 11


def test_reset_starts_a_new_stream():
    segmenter = Segmenter(SMALL)
    segmenter.push(np.full(10, 0.9))
    segmenter.reset()
    assert segmenter.frames_seen == 0 and segmenter.state.open_start is None
    assert segmenter.flush() == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"onset": 0.4, "offset": 0.5}, "offset <= onset.*got offset=0.5, onset=0.4"),
        ({"onset": 1.5}, "onset <= 1.*got offset=0.35, onset=1.5"),
        ({"offset": -0.1}, "0 <= offset.*got offset=-0.1"),
        ({"min_silence_s": -1.0}, "min_silence_s >= 0.*got -1.0"),
        ({"pad_s": float("nan")}, "pad_s >= 0.*got nan"),
        ({"frame_shift_s": 0.0}, "frame_shift_s > 0, got 0.0"),
        ({"pad_s": 0.2}, "2 \\* pad_s <= min_silence_s.*got pad_s=0.2, min_silence_s=0.3"),
        ({"max_segment_s": 0.1}, "min_speech_s <= max_segment_s.*got min_speech_s=0.25"),
    ],
)
def test_invalid_config_raises_with_expected_and_received(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SegmenterConfig(**kwargs)


@pytest.mark.parametrize(
    ("probs", "message"),
    [
        (np.zeros((2, 3)), r"expected probs of shape \(n,\), got shape \(2, 3\)"),
        (np.float64(0.5), r"expected probs of shape \(n,\), got shape \(\)"),
        (np.array([0.1, np.nan]), "expected finite probs, got nan at index 1"),
        (np.array([0.1, 1.2]), r"expected probs in \[0, 1\], got values in \[0.1, 1.2\]"),
        (np.array([-0.5, 0.2]), r"expected probs in \[0, 1\], got values in \[-0.5, 0.2\]"),
    ],
)
def test_invalid_probs_raise_and_leave_state_untouched(probs, message):
    segmenter = Segmenter(SMALL)
    segmenter.push(np.array([0.9, 0.9]))
    before = copy.deepcopy(segmenter.state)
    with pytest.raises(ValueError, match=message):
        segmenter.push(probs)
    assert segmenter.state == before
