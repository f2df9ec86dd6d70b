"""How far back in time does a recurrent VAD model still learn from? The vanishing-gradient picture.

    python examples/gradient_flow.py --data DIR [--models vad-uni runs/x/last.pt] [--seconds 6]

For clips of a labelled corpus split (a folder with manifest.jsonl, e.g. the ``valid`` split of
the corpus ``streamseq train`` builds), the loss of each clip's last frame is differentiated with
respect to every input frame. The table shows how fast that gradient fades with the distance k,
relative to k = 0 (median over clips), for trained models and for a freshly initialised GRU, LSTM
and tanh RNN of equal parameter count. ``streamseq experiment gradients`` is the full
experiment: it trains each cell, uses several seeds and draws the plots.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import streamseq
from streamseq.data.dataset import FeatureSet
from streamseq.experiments.common import equal_budget
from streamseq.experiments.gradients import clip_batch, input_gradient_norms, summarize
from streamseq.models import ModelConfig, build_model
from streamseq.models.config import CELLS
from streamseq.tasks import get_task

DISTANCES_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)


def get_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="split directory with manifest.jsonl")
    p.add_argument("--models", nargs="+", default=["vad-uni"],
                   help="trained causal models without output delay (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=6.0, help="clip length; k goes up to it (default: %(default)s)")
    p.add_argument("--clips", type=int, default=32, help="clips to use (default: %(default)s)")
    return p.parse_args()


def main() -> int:
    args = get_args()
    torch.manual_seed(0)
    task = get_task("vad")
    data = FeatureSet(args.data, task=task, progress=False)
    frames, targets = clip_batch(data, int(args.seconds * 100), args.clips)  # (B, T, F), (B, T); 100 frames/s

    models = {}
    for name in args.models:
        model = streamseq.load_model(name)
        models[f"{name} ({model.config.cell} {model.config.hidden_size}, trained)"] = model
    hidden = equal_budget(64, 2)  # GRU 64 is the reference; the others get as many parameters
    for cell in CELLS:
        fresh = build_model(ModelConfig(cell=cell, hidden_size=hidden[cell], num_layers=2))
        fresh.set_normalization(*data.feature_stats())
        fresh.set_task("vad", ["speech"])
        models[f"{cell} {hidden[cell]}, at initialisation"] = fresh

    shown = [k for k in DISTANCES_S if k * 100 < frames.shape[1]]
    print(f"{frames.shape[0]} clips of {frames.shape[1] / 100:g} s: ||dL_t/dx_(t-k)|| / ||dL_t/dx_t||, "
          "median over clips")
    print(f"{'model':>40} " + " ".join(f"{f'k={k:g}s':>9}" for k in shown) + "   1 % horizon")
    for label, model in models.items():
        curve = summarize(input_gradient_norms(model, task, frames, targets))
        h = curve["horizon_frames"]
        print(f"{label:>40} " + " ".join(f"{curve['relative'][round(k * 100)]:9.1e}" for k in shown)
              + f"   {'beyond the clip' if h is None else f'{h * 10} ms'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
