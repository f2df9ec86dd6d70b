"""Plots of the latency report (matplotlib, Agg backend: no display needed).

* :func:`plot_tradeoff`: accuracy (F1, ROC-AUC) against the median end-of-utterance decision
  delay, one point per model.
* :func:`plot_timeline`: one clip in stream time: waveform, reference, each model's speech
  probability drawn at the time it *arrived*, and its segment decisions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from streamseq.apps.latency import ClipMeasurement, LatencyRow  # noqa: E402
from streamseq.features import FeatureConfig  # noqa: E402

_GRID = FeatureConfig()  # sample rate and frame shift of the corpus clips and model outputs


def plot_tradeoff(rows: Sequence[LatencyRow], path: str | os.PathLike) -> Path:
    """x: median end-of-utterance decision delay (ms, log scale); y: frame F1 and ROC-AUC.

    Streaming models are joined in order of lookahead and marked ``+<lookahead ms>``.
    """
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    streaming = [r for r in rows if r.lookahead_ms is not None]  # bi rows have no lookahead
    uni = sorted(streaming, key=lambda r: r.lookahead_ms or 0.0)
    for ax, metric, title in ((axes[0], "f1", "frame F1 (threshold 0.5)"), (axes[1], "roc_auc", "frame ROC-AUC")):
        if uni:
            ax.plot([r.final_p50_ms for r in uni], [getattr(r, metric) for r in uni], "o-", color="tab:blue",
                    label="uni (streaming), +lookahead")
        for i, r in enumerate(uni):
            ax.annotate(f"+{r.lookahead_ms:g}", (r.final_p50_ms, getattr(r, metric)), textcoords="offset points",
                        xytext=(0, 7 if i % 2 == 0 else -13), ha="center", fontsize=8, color="tab:blue")
        for r in rows:
            if r.lookahead_ms is None:
                ax.plot(r.final_p50_ms, getattr(r, metric), "s", color="tab:red", label=r.model)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator([100, 200, 300, 500, 1000, 2000, 3000, 5000, 10000]))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(title)
        ax.set_xlabel("median end-of-utterance decision delay (ms)")
        ax.grid(alpha=0.3, which="both")
        ax.margins(y=0.15)
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle("Latency vs accuracy (Segmenter decisions, stream time)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_timeline(audio: np.ndarray, labels: np.ndarray, traces: Mapping[str, ClipMeasurement],
                  path: str | os.PathLike, sample_rate: int = _GRID.sample_rate,
                  frame_shift_s: float = _GRID.frame_shift_s) -> Path:
    """One clip: rows for waveform + reference, then one per model at arrival time.

    A uni model's row is a step curve: frame t's probability plotted at the stream time it came
    back (so lookahead shows as a shift to the right). A model whose outputs all arrive at
    once (bi) gets a faint curve at frame time and a bar at the time they all arrived.
    Triangles mark Segmenter "start" (up) and "end" (down) decisions at their decision times.
    """
    end = max([len(audio) / sample_rate] + [m.arrival_s.max(initial=0) for m in traces.values()]) + 0.1
    fig, axes = plt.subplots(len(traces) + 1, 1, figsize=(12, 1.2 * (len(traces) + 1) + 0.8), sharex=True)
    axes = np.atleast_1d(axes)
    t = np.arange(len(audio)) / sample_rate
    axes[0].plot(t, audio, lw=0.3, color="0.4")
    _shade(axes[0], labels, frame_shift_s)
    axes[0].set_ylabel("audio +\nreference", fontsize=8)
    for ax, (name, m) in zip(axes[1:], traces.items(), strict=True):
        _shade(ax, labels, frame_shift_s)
        if np.unique(m.arrival_s).size <= 1:  # everything at once: the whole utterance
            frames_t = np.arange(m.probs.size) * frame_shift_s
            ax.plot(frames_t, m.probs, color="tab:red", alpha=0.35, lw=1, label="values (for frame time)")
            ax.axvline(m.arrival_s.max(initial=0), color="tab:red", lw=3)
            ax.text(m.arrival_s.max(initial=0), 0.5, " all outputs arrive here ", ha="right", va="center",
                    fontsize=8, color="tab:red")
        else:
            ax.step(m.arrival_s, m.probs, where="post", color="tab:blue", lw=1)
        for e in m.events:
            up = e.event.kind == "start"
            ax.plot(e.decision_s, 1.08 if up else -0.08, "^" if up else "v", color="green" if up else "black", ms=5)
        ax.set_ylim(-0.2, 1.2)
        ax.set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
    axes[-1].set_xlabel("stream time (s): when the audio / the output was available")
    axes[-1].set_xlim(0, end)
    fig.suptitle("Speech probability as it arrived (grey: reference speech; ^ start / v end decisions)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def _shade(ax, labels: np.ndarray, frame_shift_s: float) -> None:
    y = np.asarray(labels).astype(np.int8)
    edges = np.diff(np.concatenate(([0], y, [0])))
    for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        ax.axvspan(a * frame_shift_s, b * frame_shift_s, color="0.85", lw=0)


def pick_timeline_clip(clips: Sequence[tuple[np.ndarray, np.ndarray, dict]], max_s: float = 12.0) -> int:
    """Index of the first clip of at most ``max_s`` seconds with two or more speech runs (else 0)."""
    for i, (audio, labels, _) in enumerate(clips):
        runs = int(np.sum(np.diff(np.concatenate(([0], np.asarray(labels).astype(np.int8)))) == 1))
        if len(audio) / _GRID.sample_rate <= max_s and runs >= 2:
            return i
    return 0
