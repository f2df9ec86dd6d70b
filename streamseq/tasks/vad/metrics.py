"""VAD evaluation metrics (numpy only): frame-level scores, grouped reports, segment boundaries.

Frame arrays have shape (T,): scores are speech scores (any finite reals, e.g. probabilities),
labels are 0/1 (or bool) with 1 = speech. A frame is called speech when score >= threshold.
Ratios with a zero denominator are NaN.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from streamseq.tasks.vad.postprocess import Segment

OVERALL = ("overall", "all")
"""Key of the all-records group in `grouped_metrics`."""

Record = tuple[np.ndarray, np.ndarray, Mapping[str, Any]]
SegmentLike = Segment | tuple[float, float]


def _as_frames(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.ndim != 1 or y.shape != s.shape:
        raise ValueError(
            f"expected scores and labels of the same shape (T,), got {s.shape} and {y.shape}"
        )
    if not np.all(np.isfinite(s)):
        raise ValueError("expected finite scores, got NaN or inf")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError(f"expected labels in {{0, 1}}, got values {np.unique(y)[:5]}")
    return s, y.astype(bool)


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else float("nan")


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve via the rank-sum statistic; ties count one half.

    NaN when only one class is present.
    """
    s, y = _as_frames(scores, labels)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    average_ranks = (ends - counts + 1 + ends) / 2.0  # 1-based ranks, averaged over ties
    rank_sum = average_ranks[inverse][y].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def frame_metrics(
    scores: np.ndarray, labels: np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """Frame-level detection metrics at `threshold`.

    Keys: f1, precision, recall, miss_rate (missed speech / speech frames),
    false_alarm_rate (false speech / non-speech frames), accuracy, n_frames, speech_fraction.
    """
    s, y = _as_frames(scores, labels)
    pred = s >= threshold
    tp = int(np.sum(pred & y))
    fp = int(np.sum(pred & ~y))
    fn = int(np.sum(~pred & y))
    tn = int(np.sum(~pred & ~y))
    return {
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "miss_rate": _ratio(fn, tp + fn),
        "false_alarm_rate": _ratio(fp, fp + tn),
        "accuracy": _ratio(tp + tn, y.size),
        "n_frames": y.size,
        "speech_fraction": _ratio(tp + fn, y.size),
    }


def grouped_metrics(
    records: Sequence[Record], group_keys: Sequence[str], threshold: float = 0.5
) -> dict[tuple[str, Hashable], dict[str, float]]:
    """`frame_metrics` plus roc_auc for the frames of all records pooled per group.

    records: (scores (T,), labels (T,), meta) triples. Groups are (key, meta[key]) for each
    key in group_keys, in order of first appearance, after the OVERALL group of all records.
    """
    pooled: dict[tuple[str, Hashable], tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for index, (scores, labels, meta) in enumerate(records):
        groups: list[tuple[str, Hashable]] = [OVERALL]
        for key in group_keys:
            if key not in meta:
                raise ValueError(f"expected meta key {key!r} in record {index}, got {sorted(meta)}")
            groups.append((key, meta[key]))
        for group in groups:
            score_parts, label_parts = pooled.setdefault(group, ([], []))
            score_parts.append(np.asarray(scores))
            label_parts.append(np.asarray(labels))
    result: dict[tuple[str, Hashable], dict[str, float]] = {}
    for group, (score_parts, label_parts) in pooled.items():
        s, y = np.concatenate(score_parts), np.concatenate(label_parts)
        result[group] = frame_metrics(s, y, threshold) | {"roc_auc": roc_auc(s, y)}
    return result


def labels_to_segments(
    labels: np.ndarray, frame_shift_s: float = 0.01
) -> list[tuple[float, float]]:
    """Runs of speech frames in labels, shape (T,), as (start, end) in seconds, end exclusive."""
    y = np.asarray(labels)
    if y.ndim != 1 or not np.all((y == 0) | (y == 1)):
        raise ValueError(f"expected 0/1 labels of shape (T,), got shape {y.shape}")
    edges = np.diff(np.concatenate(([0], y.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(a) * frame_shift_s, int(b) * frame_shift_s) for a, b in zip(starts, ends, strict=True)]


def _bounds(segment: SegmentLike) -> tuple[float, float]:
    if isinstance(segment, Segment):
        return segment.start, segment.end
    start, end = segment
    return float(start), float(end)


def segment_boundary_errors(
    ref: Sequence[SegmentLike], hyp: Sequence[SegmentLike]
) -> dict[str, Any]:
    """Match hypothesis to reference segments and measure boundary errors (seconds).

    Pairs with positive overlap are matched greedily, largest overlap first (ties: lower ref
    then hyp index), each segment at most once. Returns matches [(ref_index, hyp_index)]
    sorted by ref index, onset_errors_s / offset_errors_s (|ref - hyp| per match, same order),
    their means mean_onset_error_s / mean_offset_error_s (NaN if no match), n_matched,
    n_missed (unmatched ref) and n_inserted (unmatched hyp).
    """
    r, h = [_bounds(s) for s in ref], [_bounds(s) for s in hyp]
    candidates = []
    for i, (r0, r1) in enumerate(r):
        for j, (h0, h1) in enumerate(h):
            overlap = min(r1, h1) - max(r0, h0)
            if overlap > 0:
                candidates.append((-overlap, i, j))
    used_ref: set[int] = set()
    used_hyp: set[int] = set()
    matches = []
    for _, i, j in sorted(candidates):
        if i not in used_ref and j not in used_hyp:
            used_ref.add(i)
            used_hyp.add(j)
            matches.append((i, j))
    matches.sort()
    onset = [abs(r[i][0] - h[j][0]) for i, j in matches]
    offset = [abs(r[i][1] - h[j][1]) for i, j in matches]
    return {
        "matches": matches,
        "onset_errors_s": onset,
        "offset_errors_s": offset,
        "mean_onset_error_s": float(np.mean(onset)) if onset else float("nan"),
        "mean_offset_error_s": float(np.mean(offset)) if offset else float("nan"),
        "n_matched": len(matches),
        "n_missed": len(r) - len(matches),
        "n_inserted": len(h) - len(matches),
    }
