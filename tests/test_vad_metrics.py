import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamseq.tasks.vad.metrics import (
    OVERALL,
    frame_metrics,
    grouped_metrics,
    labels_to_segments,
    roc_auc,
    segment_boundary_errors,
)
from streamseq.tasks.vad.postprocess import Segment


def brute_force_auc(scores, labels):
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


@settings(max_examples=200, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(st.one_of(st.integers(0, 5).map(float), st.floats(-3, 3)), st.integers(0, 1)),
        min_size=2,
        max_size=60,
    )
)
def test_roc_auc_equals_pairwise_count_with_ties(pairs):
    scores = np.array([s for s, _ in pairs])
    labels = np.array([y for _, y in pairs])
    if labels.min() == labels.max():
        assert math.isnan(roc_auc(scores, labels))
    else:
        assert roc_auc(scores, labels) == pytest.approx(brute_force_auc(scores, labels))


def test_roc_auc_perfect_inverted_tied_and_single_class():
    labels = np.array([0, 0, 1, 1, 0, 1])
    scores = labels * 0.8 + 0.1
    assert roc_auc(scores, labels) == 1.0
    assert roc_auc(1 - scores, labels) == 0.0
    assert roc_auc(np.full(6, 0.3), labels) == 0.5
    assert math.isnan(roc_auc(np.array([0.1, 0.9]), np.array([1, 1])))


def test_frame_metrics_on_hand_computed_example():
    scores = np.array([0.9, 0.8, 0.2, 0.6, 0.1, 0.4, 0.7, 0.3])
    labels = np.array([1, 1, 1, 0, 0, 0, 1, 0])
    # predicted 1 1 0 1 0 0 1 0 -> tp 3, fn 1 (frame 2), fp 1 (frame 3), tn 3
    m = frame_metrics(scores, labels, threshold=0.5)
    assert m == pytest.approx(
        {
            "f1": 0.75,
            "precision": 0.75,
            "recall": 0.75,
            "miss_rate": 0.25,
            "false_alarm_rate": 0.25,
            "accuracy": 0.75,
            "n_frames": 8,
            "speech_fraction": 0.5,
        }
    )
    # threshold is inclusive: 0.6 and above is speech; lower threshold catches frame 2
    assert frame_metrics(scores, labels, threshold=0.2)["miss_rate"] == 0.0
    assert frame_metrics(scores, labels, threshold=0.2)["false_alarm_rate"] == 0.75


def test_frame_metrics_undefined_ratios_are_nan():
    m = frame_metrics(np.array([0.1, 0.2]), np.array([0, 0]))
    assert math.isnan(m["recall"]) and math.isnan(m["miss_rate"]) and math.isnan(m["f1"])
    assert m["false_alarm_rate"] == 0.0 and m["accuracy"] == 1.0


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        (np.zeros(3), np.zeros(4), r"same shape \(T,\), got \(3,\) and \(4,\)"),
        (np.zeros((2, 2)), np.zeros((2, 2)), r"got \(2, 2\) and \(2, 2\)"),
        (np.array([0.1, np.nan]), np.array([0, 1]), "expected finite scores"),
        (np.array([0.1, 0.2]), np.array([0, 2]), r"expected labels in \{0, 1\}, got values \[0 2\]"),
    ],
)
def test_invalid_frame_inputs_raise(scores, labels, message):
    with pytest.raises(ValueError, match=message):
        frame_metrics(scores, labels)


def test_grouped_metrics_pools_frames_per_group_and_overall():
    rng = np.random.default_rng(0)
    metas = [
        {"snr_band": "low", "background": "babble"},
        {"snr_band": "high", "background": "babble"},
        {"snr_band": "low", "background": "music"},
    ]
    records = [(rng.random(50), rng.integers(0, 2, 50), meta) for meta in metas]
    result = grouped_metrics(records, ["snr_band", "background"], threshold=0.4)
    assert list(result) == [
        OVERALL,
        ("snr_band", "low"),
        ("background", "babble"),
        ("snr_band", "high"),
        ("background", "music"),
    ]
    low = [records[0], records[2]]
    scores = np.concatenate([r[0] for r in low])
    labels = np.concatenate([r[1] for r in low])
    expected = frame_metrics(scores, labels, 0.4) | {"roc_auc": roc_auc(scores, labels)}
    assert result[("snr_band", "low")] == expected
    assert result[OVERALL]["n_frames"] == 150
    assert result[("background", "music")]["f1"] == frame_metrics(*records[2][:2], 0.4)["f1"]


def test_grouped_metrics_missing_meta_key_raises():
    records = [(np.array([0.2]), np.array([1]), {"snr_band": "low"})]
    with pytest.raises(ValueError, match="expected meta key 'background' in record 0"):
        grouped_metrics(records, ["background"])


def test_labels_to_segments_finds_runs_including_edges():
    segments = labels_to_segments(np.array([1, 1, 0, 0, 1, 0, 1, 1, 1]), frame_shift_s=0.01)
    assert np.array(segments) == pytest.approx(np.array([[0.0, 0.02], [0.04, 0.05], [0.06, 0.09]]))
    assert labels_to_segments(np.zeros(5)) == []


def test_boundary_errors_on_hand_built_example():
    ref = [(0.0, 1.0), (2.0, 3.0), (5.0, 6.0)]
    hyp = [(0.1, 0.9), (1.9, 2.5), (2.6, 3.2), (8.0, 9.0)]
    # ref 1 overlaps hyp 1 by 0.5 and hyp 2 by 0.4: hyp 1 wins, hyp 2 is an insertion.
    out = segment_boundary_errors(ref, hyp)
    assert out["matches"] == [(0, 0), (1, 1)]
    assert out["onset_errors_s"] == pytest.approx([0.1, 0.1])
    assert out["offset_errors_s"] == pytest.approx([0.1, 0.5])
    assert out["mean_onset_error_s"] == pytest.approx(0.1)
    assert out["mean_offset_error_s"] == pytest.approx(0.3)
    assert (out["n_matched"], out["n_missed"], out["n_inserted"]) == (2, 1, 2)


def test_boundary_matching_is_greedy_by_largest_overlap():
    # hyp 0 overlaps ref 0 by 2 s and ref 1 by 4 s: it takes ref 1, leaving ref 0 missed.
    out = segment_boundary_errors([(0.0, 3.0), (4.0, 8.0)], [(1.0, 8.0)])
    assert out["matches"] == [(1, 0)]
    assert out["onset_errors_s"] == [3.0] and out["offset_errors_s"] == [0.0]
    assert (out["n_missed"], out["n_inserted"]) == (1, 0)


def test_boundary_errors_accept_segments_and_handle_no_match():
    hyp = [Segment(start=0.5, end=1.5, mean_prob=0.9, start_frame=50, end_frame=150)]
    out = segment_boundary_errors([(0.0, 1.0)], hyp)
    assert out["matches"] == [(0, 0)] and out["onset_errors_s"] == [0.5]
    empty = segment_boundary_errors([(0.0, 1.0)], [(1.0, 2.0)])  # touching is no overlap
    assert empty["n_matched"] == 0 and math.isnan(empty["mean_onset_error_s"])
    assert (empty["n_missed"], empty["n_inserted"]) == (1, 1)
