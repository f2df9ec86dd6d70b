"""Gradient flow: how much the loss at frame t still depends on the input k frames earlier.

Dimension legend: B clips, T frames (10 ms), F log-mel bins, K = T distances (k = 0 .. T - 1).

For each clip the loss of its last frame ``t = T - 1`` is differentiated with respect to every
(normalised) input frame; ``G(k) = || d loss_t / d x_{t-k} ||`` (2-norm over the F bins) is the
vanishing-gradient picture. One backward pass gives the whole curve of a clip. The measurement
runs in float64, so a gradient that fades to 1e-30 is still a number and not an underflow to 0.
``G(k) / G(0)`` does not depend on how wrong the prediction at t is (that factor is common to all k):
it is the *relative* curve, and the **gradient horizon** is the smallest k at which its median over
clips falls below a fraction (1 %) of its value at k = 0: how far back training can still reach.
"""

from __future__ import annotations

import copy
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from streamseq.data.dataset import FeatureSet
from streamseq.experiments.common import COLORS, Run, Workspace, markdown_table, save_figure, write_outputs
from streamseq.models import FrameModel
from streamseq.models.config import CELLS
from streamseq.tasks import Task
from streamseq.training.trainer import Trainer

HORIZON_FRACTION = 0.01  # the gradient horizon: relative gradient below 1 % of its k = 0 value
DECAY_SPAN = (50, 150)  # frames (0.5-1.5 s) over which the decay per frame is measured


def input_gradient_norms(model: FrameModel, task: Task, frames: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """``G[b, k] = || d loss(frame T-1) / d x[b, T-1-k] ||`` for raw frames ``(B, T, F)`` and targets ``(B, T)``.

    ``x`` are the normalised frames the recurrent layer reads. The loss of each clip is the task's
    loss on its last frame alone; clips do not interact, so one backward pass serves the batch.
    Returns ``(B, T)`` in float64, column k for distance k.
    """
    if model.config.kind != "uni" or model.config.output_delay:
        raise ValueError(f"expected a causal model without output delay; received kind={model.config.kind!r}, "
                         f"output_delay={model.config.output_delay}")
    net = copy.deepcopy(model).double().eval()
    x = net.normalize(frames.double())[0].detach().requires_grad_(True)  # (B, T, F)
    y, _ = net.rnn(x)  # (B, T, H)
    logits = net.head(y[:, -1:])  # (B, 1, C): the last frame only
    n = frames.shape[0]
    last = task.collate_targets([t[-1:] for t in targets])  # the last frame's targets, one frame per clip
    loss = task.loss(logits, torch.ones(n, dtype=torch.long), last) * n  # the task averages over the batch
    (grad,) = torch.autograd.grad(loss, x)
    return grad.norm(dim=-1).flip(1).numpy()  # (B, T): column k is frame T - 1 - k


def clip_batch(data: FeatureSet, frames: int, max_clips: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``frames`` frames ``(B, T, F)`` and targets ``(B, T)`` of up to ``max_clips`` clips long enough."""
    items = [(f[:frames], t[:frames]) for f, t, _ in (data[i] for i in range(len(data))) if f.shape[0] >= frames]
    if not items:
        raise ValueError(f"no clip of {data.split_dir} has {frames} frames; use shorter gradient_frames")
    items = items[:max_clips]
    return torch.stack([f for f, _ in items]), torch.stack([t for _, t in items])


def horizon(relative: np.ndarray, fraction: float = HORIZON_FRACTION) -> int | None:
    """Smallest k with ``relative[k] < fraction`` (None: never within the measured window)."""
    below = np.flatnonzero(relative < fraction)
    return int(below[0]) if below.size else None


def decay_per_frame(relative: np.ndarray, span: tuple[int, int] = DECAY_SPAN) -> float | None:
    """The factor by which ``relative`` shrinks per frame between ``span`` frames, geometric mean
    (None when the curve is shorter); 1 would be a gradient that does not fade at all."""
    a, b = span
    if relative.size <= b or relative[a] <= 0:
        return None
    return float(np.exp(np.log(max(relative[b], 1e-300) / relative[a]) / (b - a)))


def summarize(g: np.ndarray) -> dict:
    """Median over clips of ``G(k)`` and of ``G(k) / G(0)``, the horizon of the latter (in frames)
    and its decay per frame over :data:`DECAY_SPAN`."""
    relative = np.median(g / np.maximum(g[:, :1], 1e-300), axis=0)
    return {"absolute": np.median(g, axis=0), "relative": relative, "horizon_frames": horizon(relative),
            "decay_per_frame": decay_per_frame(relative)}


def initial_model(ws: Workspace, run: Run) -> FrameModel:
    """The model ``run`` started from: the Trainer's seeded initialisation, normalised on the training set."""
    model = Trainer(run.config, ws.task, run.path / "init", progress=False).model
    model.set_normalization(*ws.train_set.feature_stats())
    return model.eval()


def configs(ws: Workspace) -> list:
    return [ws.config(cell, seed) for cell in CELLS for seed in ws.settings.seeds]


def measure(ws: Workspace) -> dict:
    """Curves per cell: at initialisation and after training, for each seed (measured once per workspace)."""
    if "gradients" in ws.memo:
        return ws.memo["gradients"]
    frames, targets = clip_batch(ws.valid_set, ws.settings.gradient_frames, ws.settings.gradient_clips)
    runs = ws.runs(configs(ws))
    results: dict = {"clips": int(frames.shape[0]), "frames": int(frames.shape[1]), "frame_s": 0.01,
                     "horizon_fraction": HORIZON_FRACTION, "cells": {}}
    for cell in CELLS:
        entry: dict = {"hidden_size": ws.hidden[cell], "init": [], "trained": [], "grad_norm_steps": []}
        for run in (r for r in runs if r.config.cell == cell):
            entry["init"].append(summarize(input_gradient_norms(initial_model(ws, run), ws.task, frames, targets)))
            entry["trained"].append(summarize(input_gradient_norms(run.model(), ws.task, frames, targets)))
            entry["grad_norm_steps"].append(run.step_grad_norm)
        entry["clip_norm"] = runs[0].config.clip_norm
        results["cells"][cell] = entry
    ws.memo["gradients"] = results
    return results


def _horizon_text(frames: int | None, window: int) -> str:
    return f"> {window * 10} ms" if frames is None else f"{frames * 10} ms"


def report(ws: Workspace, out: Path) -> dict:
    """Measure, then write gradients.{json,md}, gradient-flow.png and gradient-norms.png."""
    res = measure(ws)
    cells, window = res["cells"], res["frames"]
    rows = []
    for cell, e in cells.items():
        decay = [" / ".join("n/a" if x["decay_per_frame"] is None else f"{x['decay_per_frame']:.3f}" for x in e[when])
                 for when in ("init", "trained")]
        rows.append([cell, e["hidden_size"]] + [" / ".join(_horizon_text(s["horizon_frames"], window) for s in e[when])
                                                for when in ("init", "trained")] + decay
                    + [f"{np.median([x['relative'][k] for x in e['trained']]):.1e}" if k < window else "n/a"
                       for k in (50, 100, 300)])
    a, b = DECAY_SPAN
    md = (f"Gradient of the last frame's loss with respect to the input k frames earlier, median over "
          f"{res['clips']} validation clips of {window / 100:g} s (float64).\n\n"
          + markdown_table(["cell", "hidden", f"horizon at init ({HORIZON_FRACTION:.0%} of k=0), per seed",
                            "horizon after training, per seed", f"decay per frame at init ({a / 100:g}-{b / 100:g} s)",
                            "decay per frame, trained", "trained: G(0.5 s)/G(0)", "G(1 s)/G(0)", "G(3 s)/G(0)"], rows)
          + "\nPer seed: seeds " + ", ".join(map(str, ws.settings.seeds)) + "; G(k)/G(0) columns: median over seeds.\n")
    write_outputs(out, "gradients", res, md)
    plot_flow(res, out / "gradient-flow.png")
    plot_norm_history(res, out / "gradient-norms.png")
    return res


def plot_flow(res: dict, path: Path) -> Path:
    """Rows: absolute and relative G(k); columns: at initialisation, after training; log y."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    for col, when in enumerate(("init", "trained")):
        for row, key in enumerate(("absolute", "relative")):
            ax = axes[row, col]
            for cell, e in res["cells"].items():
                for i, s in enumerate(e[when]):
                    k = np.arange(len(s[key])) * res["frame_s"]
                    ax.semilogy(k, np.maximum(s[key], 1e-300), color=COLORS[cell], lw=1.5 if i == 0 else 0.6,
                                alpha=1 if i == 0 else 0.5, label=f"{cell} (H={e['hidden_size']})" if i == 0 else None)
            if key == "relative":
                ax.axhline(res["horizon_fraction"], color="gray", ls=":", lw=1)
            ax.set_title(f"{'at initialisation' if when == 'init' else 'after training'}: "
                         f"{'||dL_t/dx_(t-k)||' if key == 'absolute' else 'relative to k = 0'}")
            ax.set_ylim(bottom=max(ax.get_ylim()[0], 1e-40))
            ax.grid(alpha=0.3, which="both")
            if row == 1:
                ax.set_xlabel("distance k between input and loss frame (s)")
    axes[0, 0].legend()
    fig.suptitle("Gradient flow through time (median over clips; thin lines: other seeds)")
    return save_figure(fig, path)


def plot_norm_history(res: dict, path: Path) -> Path:
    """Global gradient norm before clipping at every training step, per cell (log y)."""
    fig, ax = plt.subplots(figsize=(9, 4))
    for cell, e in res["cells"].items():
        for i, norms in enumerate(e["grad_norm_steps"]):
            ax.semilogy(np.arange(1, len(norms) + 1), norms, color=COLORS[cell], lw=1.2 if i == 0 else 0.6,
                        alpha=1 if i == 0 else 0.5, label=cell if i == 0 else None)
    clip = next(iter(res["cells"].values()))["clip_norm"]
    if clip:
        ax.axhline(clip, color="gray", ls=":", label=f"clip norm {clip:g}")
    ax.set_xlabel("training step")
    ax.set_ylabel("gradient norm before clipping")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return save_figure(fig, path)
