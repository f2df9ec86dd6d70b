"""Gradient clipping: the same training with clipping off and on, over several seeds.

The Trainer clips the global gradient norm to ``clip_norm`` (0: off) and records every step's
norm *before* clipping, so a run shows both what it did and what clipping would have done:
a step is clipped when its norm exceeds the threshold. Two studies:

* ``gru``: the shipped cell at the usual settings, clipping off, at 1.0 (the default) and at 0.25;
* ``rnn-hot``: a tanh RNN at a learning rate of 0.1 (33x the usual), a setting made to be unstable:
  there the gradient norm does explode. Clipping off and at 1.0.

A **loss spike** is a step whose training loss is more than :data:`SPIKE_FACTOR` times the median
of the :data:`SPIKE_WINDOW` steps before it; a **norm spike**, one whose gradient norm is more than
ten times that median of norms. Accuracy is the last epoch's, on the validation split (no epoch picked).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from streamseq.experiments.common import Run, Workspace, markdown_table, mean_sd, save_figure, write_outputs
from streamseq.training.config import TrainConfig

SPIKE_FACTOR = 2.0
NORM_SPIKE_FACTOR = 10.0
SPIKE_WINDOW = 20
STUDIES: dict[str, dict] = {
    "gru": {"title": "GRU, usual settings (lr 3e-3)", "cell": "gru", "lr": None, "clip_norms": (0.0, 1.0, 0.25)},
    "rnn-hot": {"title": "tanh RNN, 33x the learning rate (lr 0.1)", "cell": "rnn", "lr": 0.1,
                "clip_norms": (0.0, 1.0)},
}
_SETTING_COLORS = ("tab:red", "tab:blue", "tab:green", "tab:purple")


def clipped_share(norms: np.ndarray, clip_norm: float) -> float:
    """Share of steps whose norm before clipping exceeded ``clip_norm`` (the steps clipping scaled down)."""
    norms = np.asarray(norms, dtype=np.float64)
    return float(np.mean(~(norms <= clip_norm))) if norms.size else float("nan")  # a NaN norm counts as clipped


def spikes(values: np.ndarray, factor: float = SPIKE_FACTOR, window: int = SPIKE_WINDOW) -> np.ndarray:
    """Indices of steps whose value exceeds ``factor`` times the median of the ``window`` steps before."""
    v = np.asarray(values, dtype=np.float64)
    return np.array([i for i in range(window, v.size) if not v[i] <= factor * np.median(v[i - window : i])], dtype=int)


def study_configs(ws: Workspace, study: str) -> list[TrainConfig]:
    s = STUDIES[study]
    extra = {"lr": s["lr"]} if s["lr"] else {}
    return [ws.config(s["cell"], seed, clip_norm=c, **extra) for c in s["clip_norms"] for seed in ws.settings.seeds]


def configs(ws: Workspace) -> list[TrainConfig]:
    return [c for study in STUDIES for c in study_configs(ws, study)]


def summarize(runs: list[Run], thresholds: tuple[float, ...]) -> dict:
    """Numbers of the seeds of one setting."""
    norms = [r.step_grad_norm for r in runs]
    losses = [r.step_loss for r in runs]
    return {
        "clip_norm": runs[0].config.clip_norm,
        "seeds": [r.config.seed for r in runs],
        "roc_auc": [r.final["roc_auc"] for r in runs],
        "f1": [r.final["f1"] for r in runs],
        "valid_loss": [r.final["loss"] for r in runs],
        "steps": [int(n.size) for n in norms],
        "share_above": {f"{t:g}": [clipped_share(n, t) for n in norms] for t in thresholds if t > 0},
        "loss_spikes": [spikes(x).tolist() for x in losses],
        "norm_spikes": [spikes(n, NORM_SPIKE_FACTOR).tolist() for n in norms],
        "median_norm": [float(np.median(n)) for n in norms],
        "max_norm": [float(np.max(n)) for n in norms],
        "nonfinite_steps": [int(np.sum(~np.isfinite(x))) for x in losses],
        "step_loss": losses,
        "step_grad_norm": norms,
    }


def report(ws: Workspace, out: Path) -> dict:
    """Train (or reuse) every run, then write clipping.{json,md} and clipping.png."""
    res: dict = {"spike_factor": SPIKE_FACTOR, "norm_spike_factor": NORM_SPIKE_FACTOR, "spike_window": SPIKE_WINDOW,
                 "studies": {}}
    md = []
    for study, spec in STUDIES.items():
        runs = ws.runs(study_configs(ws, study))
        n = len(ws.settings.seeds)
        thresholds = tuple(spec["clip_norms"])
        settings = {f"{c:g}": summarize(runs[i * n : (i + 1) * n], thresholds) for i, c in enumerate(thresholds)}
        res["studies"][study] = {"title": spec["title"], "cell": spec["cell"], "hidden_size": ws.hidden[spec["cell"]],
                                 "lr": runs[0].config.lr, "settings": settings}
        rows = []
        for key, s in settings.items():
            if s["clip_norm"]:
                clipped = f"{np.mean(s['share_above'][key]):.1%}"
            else:  # what each threshold would have clipped
                would = ", ".join(f"{np.mean(v):.1%} at {t}" for t, v in s["share_above"].items())
                clipped = f"none (would be {would})"
            rows.append(["off" if s["clip_norm"] == 0 else f"at {key}", mean_sd(s["roc_auc"]), mean_sd(s["f1"], 3),
                         clipped, " / ".join(str(len(x)) for x in s["loss_spikes"]),
                         " / ".join(str(len(x)) for x in s["norm_spikes"]),
                         f"{np.median(np.concatenate(s['step_grad_norm'])):.2f}",
                         " / ".join(f"{x:.3g}" for x in s["max_norm"]), sum(s["nonfinite_steps"])])
        steps = runs[0].step_loss.size
        md.append(f"**{spec['title']}**, {spec['cell']} H={ws.hidden[spec['cell']]}, {n} seeds "
                  f"({', '.join(map(str, ws.settings.seeds))}), {steps} steps each\n\n"
                  + markdown_table(["clipping", "final ROC-AUC", "final F1", "steps clipped", "loss spikes per seed",
                                    "norm spikes per seed", "median norm", "largest norm per seed",
                                    "non-finite losses"], rows))
    write_outputs(out, "clipping", res, "\n".join(md))
    plot(res, out / "clipping.png")
    return res


def plot(res: dict, path: Path) -> Path:
    """One row per study: training loss per step (spikes marked) and gradient norm before clipping."""
    studies = res["studies"]
    fig, axes = plt.subplots(len(studies), 2, figsize=(12, 3.6 * len(studies)), squeeze=False)
    for row, study in enumerate(studies.values()):
        ax_loss, ax_norm = axes[row]
        for j, (key, s) in enumerate(study["settings"].items()):
            color = _SETTING_COLORS[j % len(_SETTING_COLORS)]
            label = "clipping off" if s["clip_norm"] == 0 else f"clip at {key}"
            for i, (loss, norm) in enumerate(zip(s["step_loss"], s["step_grad_norm"], strict=True)):
                steps = np.arange(1, len(loss) + 1)
                first = i == 0
                ax_loss.plot(steps, loss, color=color, lw=0.9 if first else 0.5, alpha=0.9 if first else 0.4,
                             label=label if first else None)
                marked = s["loss_spikes"][i]
                ax_loss.plot(steps[marked], np.asarray(loss)[marked], "o", color=color, ms=4, mfc="none")
                ax_norm.semilogy(steps, norm, color=color, lw=0.9 if first else 0.5, alpha=0.9 if first else 0.4,
                                 label=label if first else None)
            if s["clip_norm"]:
                ax_norm.axhline(s["clip_norm"], color=color, ls=":", lw=1)
        ax_loss.set_title(f"{study['title']}: training loss per step (o: spikes)")
        ax_norm.set_title("gradient norm before clipping (dotted: thresholds)")
        for ax in (ax_loss, ax_norm):
            ax.set_xlabel("step")
            ax.grid(alpha=0.3, which="both")
        ax_loss.legend(fontsize=8)
    seeds = len(next(iter(next(iter(studies.values()))["settings"].values()))["seeds"])
    fig.suptitle(f"Clipping, {seeds} seeds per setting (thick: first seed)")
    return save_figure(fig, path)
