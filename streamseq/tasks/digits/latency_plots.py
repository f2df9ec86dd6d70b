"""Plots of the digits latency report (matplotlib, Agg backend: no display needed).

* :func:`plot_tradeoff`: digit accuracy against the median per-digit emission delay, and string
  accuracy against the median end-of-utterance -> final transcript delay, one point per model.
* :func:`plot_timeline`: one clip in stream time: waveform with the reference digits, then per
  model each digit at the time it appeared and the moment its final transcript was available.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from streamseq.tasks.digits.evaluate import SAMPLE_RATE  # noqa: E402
from streamseq.tasks.digits.latency import ClipDigits, DigitLatencyRow  # noqa: E402


def plot_tradeoff(rows: Sequence[DigitLatencyRow], path: str | os.PathLike) -> Path:
    """Left: 1 - digit error rate vs median per-digit emission delay; right: string accuracy vs
    median final-transcript delay (ms after the reference digit ends). Uni models blue, bi red."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, x, y, title in ((axes[0], "delay_p50_ms", "digit_error_rate", "digit accuracy (1 - DER)"),
                            (axes[1], "final_p50_ms", "string_accuracy", "string accuracy")):
        for r in rows:
            value = 1 - r.digit_error_rate if y == "digit_error_rate" else r.string_accuracy
            uni = r.lookahead_ms is not None
            ax.plot(getattr(r, x), value, "o" if uni else "s", color="tab:blue" if uni else "tab:red")
            ax.annotate(r.model, (getattr(r, x), value), textcoords="offset points", xytext=(0, 7), ha="center",
                        fontsize=8, color="tab:blue" if uni else "tab:red")
        ax.set_title(title)
        ax.set_xlabel("median per-digit emission delay (ms)" if x == "delay_p50_ms"
                      else "median end of utterance -> final transcript (ms)")
        ax.grid(alpha=0.3)
        ax.margins(x=0.2, y=0.2)
    fig.suptitle("Digits: latency vs accuracy (stream time after the reference digit ends)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_timeline(audio: np.ndarray, meta: dict, traces: Mapping[str, ClipDigits], path: str | os.PathLike,
                  sample_rate: int = SAMPLE_RATE) -> Path:
    """Waveform with the reference digits (grey spans), then one row per model: its digits at their
    emission times (green: matched to a reference digit, red: not; a bi model's all appear with its
    final transcript), triangles at its end-of-speech decisions, and a bar where its final
    transcript was available."""
    end = max([len(audio) / sample_rate] + [float(m.final_s or 0) for m in traces.values()]) + 0.2
    fig, axes = plt.subplots(len(traces) + 1, 1, figsize=(12, 1.1 * (len(traces) + 1) + 0.8), sharex=True)
    axes = np.atleast_1d(axes)
    spans = meta.get("digit_times", [])
    axes[0].plot(np.arange(len(audio)) / sample_rate, audio, lw=0.3, color="0.4")
    for ax in axes:
        for a, b in spans:
            ax.axvspan(a, b, color="0.88", lw=0)
    for (a, b), d in zip(spans, meta.get("digits", ""), strict=False):
        axes[0].text((a + b) / 2, 1.02, d, transform=axes[0].get_xaxis_transform(), ha="center", fontsize=9)
    axes[0].set_ylabel("audio +\nreference", fontsize=8)
    for ax, (name, m) in zip(axes[1:], traces.items(), strict=True):
        matched = {j for _, j in m.matches}
        at_once = m.final_s is not None and bool(np.all(m.emitted_s == m.final_s))  # bi: the final line says it
        for j, (d, t) in enumerate(zip(m.hypothesis, m.emitted_s, strict=True)):
            if not at_once:
                ax.text(t, 0.5 + 0.25 * ((j % 3) - 1), d, ha="center", va="center", fontsize=9,
                        color="tab:green" if j in matched else "tab:red")
        for t in m.speech_ends_s:  # end-of-speech decisions of the uni speech output
            ax.plot(t, 0.05, "v", color="black", ms=5)
        if m.final_s is not None:
            ax.axvline(m.final_s, color="black", lw=2)
            ax.text(m.final_s, 0.9, f" final: {m.hypothesis or '(none)'}", fontsize=8, va="top")
        ax.set_ylim(0, 1)
        ax.set_yticks([])
        ax.set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
    axes[-1].set_xlabel("stream time (s): when the audio / the digit was available")
    axes[-1].set_xlim(0, end)
    fig.suptitle(f"Digits as they appeared (reference {meta.get('digits', '')}; grey: the reference words)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
