"""GRU, LSTM and tanh RNN on the VAD task at an equal parameter budget.

Dimension legend: T frames (10 ms). A record is ``(scores (T,), labels (T,), meta)``.

Per cell, over the seeds: frame ROC-AUC and F1 (threshold 0.5) overall and per SNR band on the
validation split, after the last epoch; parameter count; training seconds per epoch; the CPU
cost of one live stream (:func:`single_stream_rtf`) and how many streams one core keeps up with
(:func:`streams_per_core`). How long a stretch each cell bridges, two ways: the gradient horizon
(:mod:`~streamseq.experiments.gradients`), and the share of frames called right as a function of
how long the current speech or silence stretch has lasted (:func:`accuracy_by_stretch`).
"""

from __future__ import annotations

import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from streamseq.experiments import gradients
from streamseq.experiments.common import (
    COLORS,
    Workspace,
    fmt,
    markdown_table,
    mean_sd,
    parameter_count,
    save_figure,
    write_outputs,
)
from streamseq.models import FrameModel
from streamseq.models.config import CELLS
from streamseq.streaming.engine import Engine
from streamseq.streaming.session import Session
from streamseq.tasks.vad.evaluate import load_split, model_scorer
from streamseq.tasks.vad.metrics import OVERALL, grouped_metrics, roc_auc

STRETCH_BINS_S = (0.0, 0.1, 0.3, 1.0, 2.0, 4.0, float("inf"))
CHUNK_MS = 32  # audio per call in the speed measurements


def since_change(labels: np.ndarray) -> np.ndarray:
    """Frames since the current run of equal labels began, ``(T,)`` (0 on its first frame; the clip start counts)."""
    y = np.asarray(labels)
    starts = np.flatnonzero(np.concatenate(([True], y[1:] != y[:-1])))
    run_start = starts[np.searchsorted(starts, np.arange(y.size), side="right") - 1]
    return np.arange(y.size) - run_start


def accuracy_by_stretch(records: list, frame_s: float = 0.01, threshold: float = 0.5) -> dict:
    """Scores per bin of time since the frame's speech or silence stretch began (``STRETCH_BINS_S``).

    ``auc[i]``: ROC-AUC of the speech frames against the non-speech frames of bin i (how well the
    two are told apart that long into a stretch, whatever the threshold); ``speech[i]``: share of
    speech frames called speech (score >= ``threshold``); ``silence[i]``: share of non-speech frames
    called non-speech; ``speech_frames``, ``silence_frames``: counts. NaN for an empty bin.
    """
    edges = np.asarray(STRETCH_BINS_S)
    scores = np.concatenate([np.asarray(s, dtype=np.float64) for s, _, _ in records])
    labels = np.concatenate([np.asarray(y) for _, y, _ in records]).astype(bool)
    bins = np.digitize(np.concatenate([since_change(y) for _, y, _ in records]) * frame_s, edges) - 1
    said = scores >= threshold
    out: dict = {"bins_s": list(STRETCH_BINS_S), "auc": [], "speech": [], "silence": [], "speech_frames": [],
                 "silence_frames": []}
    for b in range(edges.size - 1):
        speech, silence = (bins == b) & labels, (bins == b) & ~labels
        out["speech"].append(float(said[speech].mean()) if speech.any() else float("nan"))
        out["silence"].append(float((~said[silence]).mean()) if silence.any() else float("nan"))
        both = speech | silence
        out["auc"].append(roc_auc(scores[both], labels[both]))  # NaN unless both classes are there
        out["speech_frames"].append(int(speech.sum()))
        out["silence_frames"].append(int(silence.sum()))
    return out


def _test_audio(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * 16000)) / 16000
    burst = np.sin(2 * np.pi * 0.4 * t) > 0
    return (0.02 * rng.standard_normal(t.size) + 0.3 * burst * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def single_stream_rtf(models: dict[str, FrameModel], seconds: float, repeats: int = 5) -> dict[str, float]:
    """CPU seconds per audio second of one :class:`Session` (default backend: frontend + step) per
    model, fed :data:`CHUNK_MS` chunks on one thread; the minimum over ``repeats`` runs that go
    round-robin over the models, so a change of load on the machine hits them all alike."""
    audio, size = _test_audio(seconds), 16 * CHUNK_MS
    sessions = {name: Session(model) for name, model in models.items()}
    best = dict.fromkeys(models, float("inf"))
    for _ in range(repeats + 1):  # the first is a warm-up
        for name, session in sessions.items():
            session.reset()
            t0 = time.process_time()
            for i in range(0, audio.size, size):
                session.accept(audio[i : i + size], sample_rate=16000)
            best[name] = min(best[name], time.process_time() - t0)
    return {name: t / seconds for name, t in best.items()}


def _keeps_up(model: FrameModel, streams: int, ticks: int) -> bool:
    """Whether one single-threaded Engine ticks ``streams`` streams of :data:`CHUNK_MS` chunks in
    under :data:`CHUNK_MS` of CPU time at the 99th percentile of ``ticks`` ticks."""
    engine, size = Engine(model, threads=1), 16 * CHUNK_MS
    audio = (0.05 * np.random.default_rng(0).standard_normal(16000 * 20)).astype(np.float32)
    ids = [engine.open() for _ in range(streams)]
    for sid in ids:
        engine.accept(sid, audio[: 1 + sid * 37 % size], sample_rate=16000)  # staggered frame phases
    cpu = []
    for k in range(ticks + 3):
        c0 = time.process_time()
        for sid in ids:
            start = (sid * 7919 + k * size) % (audio.size - size)
            engine.accept(sid, audio[start : start + size], sample_rate=16000)
        engine.step()
        if k >= 3:  # warm-up ticks excluded
            cpu.append(time.process_time() - c0)
    return float(np.percentile(cpu, 99)) < CHUNK_MS / 1000


def streams_per_core(model: FrameModel, max_streams: int, ticks: int = 20) -> int:
    """Most live streams one core keeps up with (doubling, then three bisection steps); CPU time,
    so other jobs on the machine change it less than a wall-clock criterion would."""
    lo, hi = 0, 16
    while hi <= max_streams and _keeps_up(model, hi, ticks):
        lo, hi = hi, hi * 2
    if hi > max_streams:
        return lo
    for _ in range(3):
        mid = (lo + hi) // 2
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if _keeps_up(model, mid, ticks) else (lo, mid)
    return lo


def _band_key(band: str) -> tuple[int, float]:
    """"clean" first, then SNR bands from the highest down."""
    return (0, 0.0) if band == "clean" else (1, -float(band.split("..")[0]))


def configs(ws: Workspace) -> list:
    return gradients.configs(ws)  # the same runs: each cell at every seed, usual settings


def measure(ws: Workspace) -> dict:
    clips = load_split(ws.corpus / "valid")
    runs = ws.runs(configs(ws))
    grad = gradients.measure(ws)
    s = ws.settings
    res: dict = {"bins_s": list(STRETCH_BINS_S), "chunk_ms": CHUNK_MS, "cells": {}}
    models: dict[str, FrameModel] = {}
    for cell in CELLS:
        cell_runs = [r for r in runs if r.config.cell == cell]
        entry: dict = {"hidden_size": ws.hidden[cell], "num_layers": s.num_layers, "seeds": list(s.seeds),
                       "overall": {"roc_auc": [], "f1": []}, "bands": {}, "stretch": [],
                       "epoch_seconds": [r.train_seconds / len(r.history) for r in cell_runs]}
        for run in cell_runs:
            model = run.model()
            torch.set_num_threads(1)
            score = model_scorer(model)
            records = [(score(audio), labels, meta) for audio, labels, meta in clips]
            groups = grouped_metrics(records, ["snr_band"])
            for metric in ("roc_auc", "f1"):
                entry["overall"][metric].append(groups[OVERALL][metric])
            for (key, band), m in groups.items():
                if key == "snr_band" and band != "none":  # "none": speech-free clips
                    for metric in ("roc_auc", "f1"):
                        entry["bands"].setdefault(band, {"roc_auc": [], "f1": []})[metric].append(m[metric])
            entry["stretch"].append(accuracy_by_stretch(records))
        model = cell_runs[0].model()
        entry["parameters"] = sum(p.numel() for p in model.parameters())
        if entry["parameters"] != parameter_count(cell, model.config.hidden_size, model.config.num_layers):
            raise RuntimeError(f"{cell}: the model has {entry['parameters']} parameters, parameter_count() says "
                               f"{parameter_count(cell, model.config.hidden_size, model.config.num_layers)}")
        entry["gradient_horizon_frames"] = [x["horizon_frames"] for x in grad["cells"][cell]["trained"]]
        res["cells"][cell] = entry
        models[cell] = model
    res["gradient_window_frames"] = grad["frames"]
    ws.log("timing: one stream per cell, then streams per core (twice each, round-robin; the best counts)")
    for name, rtf in single_stream_rtf(models, s.speed_seconds).items():
        res["cells"][name]["rtf"] = rtf
    for _ in range(2):
        for name, model in models.items():
            found = max(res["cells"][name].get("streams_per_core", 0), streams_per_core(model, s.max_streams))
            res["cells"][name]["streams_per_core"] = found
            res["cells"][name]["streams_capped"] = found >= s.max_streams  # kept up with every count it tried
    return res


def report(ws: Workspace, out: Path) -> dict:
    """Write cells.{json,md}, cells-bands.png and cells-stretch.png."""
    res = measure(ws)
    cells, window = res["cells"], res["gradient_window_frames"]
    ref = cells["gru"]["parameters"]
    bands = sorted({b for e in cells.values() for b in e["bands"]}, key=_band_key)
    rows = [[cell, f"{e['num_layers']} x {e['hidden_size']}", f"{e['parameters']:,} ({e['parameters'] / ref - 1:+.1%})",
             mean_sd(e["overall"]["roc_auc"]), mean_sd(e["overall"]["f1"], 3), f"{e['rtf']:.4f}",
             f"{'>= ' if e['streams_capped'] else ''}{e['streams_per_core']}", f"{np.mean(e['epoch_seconds']):.0f}",
             " / ".join(f"> {window * 10}" if h is None else f"{h * 10}" for h in e["gradient_horizon_frames"])]
            for cell, e in cells.items()]
    md = [markdown_table(["cell", "layers x hidden", "parameters (vs GRU)", "ROC-AUC", "F1", "RTF, 1 stream",
                          "streams per core", "training s / epoch", "gradient horizon, ms per seed"], rows)]
    for metric, title in (("roc_auc", "ROC-AUC"), ("f1", "F1")):
        md.append(f"\n**{title} per SNR band** (mean over seeds)\n\n" + markdown_table(
            ["cell", *(f"SNR {b}" for b in bands)],
            [[cell, *(fmt(float(np.mean(e["bands"][b][metric])) if b in e["bands"] else float("nan"))
                      for b in bands)] for cell, e in cells.items()]))
    edges = res["bins_s"]
    heads = [f"{a:g}-{b:g} s" if np.isfinite(b) else f"> {a:g} s" for a, b in zip(edges, edges[1:], strict=False)]
    first = next(iter(cells.values()))["stretch"][0]
    for kind, title, count in (("auc", "ROC-AUC, speech against non-speech frames", None),
                               ("speech", "Speech frames called speech", "speech_frames"),
                               ("silence", "Non-speech frames called non-speech", "silence_frames")):
        counts = [[f"{count.split('_')[0]} frames", *(str(c) for c in first[count])]] if count else [
            ["speech / non-speech frames", *(f"{a} / {b}" for a, b in zip(first["speech_frames"],
                                                                        first["silence_frames"], strict=True))]]
        md.append(f"\n**{title}, by time since the stretch began** (mean over seeds)\n\n" + markdown_table(
            ["cell", *heads],
            [[cell, *(fmt(v, 3) for v in np.mean([s[kind] for s in e["stretch"]], axis=0))]
             for cell, e in cells.items()] + counts))
    write_outputs(out, "cells", res, "".join(md))
    plot_bands(res, bands, out / "cells-bands.png")
    plot_stretch(res, heads, out / "cells-stretch.png")
    return res


def plot_bands(res: dict, bands: list[str], path: Path) -> Path:
    """ROC-AUC and F1 per SNR band, one bar per cell (error bars: sd over seeds)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    x = np.arange(len(bands))
    width = 0.8 / len(res["cells"])
    for ax, metric, title in ((axes[0], "roc_auc", "frame ROC-AUC"), (axes[1], "f1", "frame F1 (threshold 0.5)")):
        for i, (cell, e) in enumerate(res["cells"].items()):
            values = [np.asarray(e["bands"].get(b, {}).get(metric, [np.nan])) for b in bands]
            ax.bar(x + (i - (len(res["cells"]) - 1) / 2) * width, [v.mean() for v in values], width,
                   yerr=[v.std() for v in values], color=COLORS[cell], label=f"{cell} (H={e['hidden_size']})")
        ax.set_xticks(x, [f"SNR {b}" for b in bands], fontsize=8)
        ax.set_title(title)
        ax.set_ylim(0.4 if metric == "roc_auc" else 0.0, 1.0)
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=8)
    return save_figure(fig, path)


def plot_stretch(res: dict, heads: list[str], path: Path) -> Path:
    """ROC-AUC and the two recalls against the time since the frame's speech / silence stretch began."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), sharey=True)
    for ax, kind, title in ((axes[0], "auc", "ROC-AUC, speech vs non-speech frames"),
                            (axes[1], "speech", "speech frames called speech"),
                            (axes[2], "silence", "non-speech frames called non-speech")):
        for cell, e in res["cells"].items():
            ax.plot(heads, np.mean([s[kind] for s in e["stretch"]], axis=0), "o-", color=COLORS[cell], label=cell)
        ax.set_title(title)
        ax.set_xlabel("time since the stretch began")
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("score (mean over seeds)")
    axes[0].legend()
    return save_figure(fig, path)
