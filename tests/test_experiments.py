"""The cell experiments: measurements checked on cases computed by hand, and each experiment run
end to end (``--quick``) on a tiny real corpus."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from streamseq.cli.main import build_parser
from streamseq.experiments import cells, clipping, gradients
from streamseq.experiments.common import QUICK, Workspace, equal_budget, parameter_count
from streamseq.models import ModelConfig, build_model
from streamseq.models.config import CELLS
from streamseq.tasks import get_task
from streamseq.training.trainer import Trainer
from test_training import tiny, write_split


def linear_rnn(r: float, hidden: int = 2):
    """A one-layer tanh RNN with ``W_hh = r I``, ``W_ih = 0.125``, head weights 1 and no biases: fed
    frames equal to the normalisation mean (normalised input 0), every pre-activation is 0, so
    tanh' = 1 and ``d z_t / d x_(t-k) = r^k W_ih^T w`` exactly."""
    model = build_model(ModelConfig(cell="rnn", hidden_size=hidden, num_layers=1))
    with torch.no_grad():
        for name, p in model.rnn.named_parameters():
            p.copy_(r * torch.eye(hidden) if name.startswith("weight_hh") else
                    torch.full_like(p, 0.125) if name.startswith("weight_ih") else torch.zeros_like(p))
        model.head.weight.fill_(1.0)
        model.head.bias.zero_()
    model.set_task("vad", ["speech"])
    return model.eval()


@pytest.mark.parametrize("r", [0.875, 0.5, -0.75])  # exact in float32, like the weights
def test_gradient_norms_decay_by_the_recurrent_factor_per_frame(r):
    model, task = linear_rnn(r), get_task("vad")
    frames = model.padding_frames(120)[None].repeat(3, 1, 1)  # (3, 120, 40): normalised to exactly 0
    targets = torch.tensor([[1.0], [0.0], [1.0]]).repeat(1, 120)
    g = gradients.input_gradient_norms(model, task, frames, targets)
    # loss = BCE(z, y): dL/dz = sigmoid(0) - y = -/+ 0.5; ||W_ih^T w|| = 2 * 0.125 * sqrt(40)
    expected = 0.5 * 0.25 * math.sqrt(40) * np.abs(r) ** np.arange(120)
    np.testing.assert_allclose(g, np.broadcast_to(expected, g.shape), rtol=1e-9, atol=1e-300)
    summary = gradients.summarize(g)
    assert summary["horizon_frames"] == math.ceil(math.log(0.01) / math.log(abs(r)))  # first k with |r|^k < 1 %


@pytest.mark.parametrize("cell", CELLS)
def test_each_clips_curve_is_the_one_it_gets_alone(cell):
    model = build_model(ModelConfig(cell=cell, hidden_size=8, num_layers=2))
    model.set_task("vad", ["speech"])
    frames, targets = torch.randn(3, 40, 40), torch.tensor([[1.0], [0.0], [1.0]]).repeat(1, 40)
    g = gradients.input_gradient_norms(model, get_task("vad"), frames, targets)
    assert g.shape == (3, 40) and np.all(g > 0)  # every earlier frame counts (float64: no underflow)
    alone = gradients.input_gradient_norms(model, get_task("vad"), frames[1:2], targets[1:2])
    np.testing.assert_allclose(g[1:2], alone, rtol=1e-10)


@pytest.mark.parametrize("layers", [1, 2])
def test_equal_budget_counts_parameters_exactly_and_matches_within_3_percent(layers):
    hidden = equal_budget(64, layers)
    budget = parameter_count("gru", 64, layers)
    for cell in CELLS:
        model = build_model(ModelConfig(cell=cell, hidden_size=hidden[cell], num_layers=layers))
        assert sum(p.numel() for p in model.parameters()) == parameter_count(cell, hidden[cell], layers)
        assert abs(parameter_count(cell, hidden[cell], layers) / budget - 1) < 0.03
    assert hidden["gru"] == 64 and hidden["lstm"] < 64 < hidden["rnn"]


def test_clipped_share_and_spikes_on_known_series():
    norms = np.array([0.5, 1.0, 1.5, np.nan, 3.0])
    assert clipping.clipped_share(norms, 1.0) == 3 / 5  # 1.0 is not above 1.0; NaN counts as clipped
    losses = np.r_[np.full(20, 0.5), 1.2, 0.5, 0.9]
    assert clipping.spikes(losses, factor=2.0, window=20).tolist() == [20]


def test_the_clipping_record_counts_the_steps_the_optimizer_saw_clipped(tmp_path):
    root = tmp_path / "corpus"
    train, valid = write_split(root / "train", 16, 0), write_split(root / "valid", 4, 1)
    task = get_task("vad")
    free = Trainer(tiny(clip_norm=0.0, batch_size=4, epochs=2), task, tmp_path / "free", progress=False)
    free.fit(train, valid)
    threshold = float(np.median([x for h in free.history for x in h["step_grad_norm"]]))  # some above, some not

    trainer = Trainer(tiny(clip_norm=threshold, batch_size=4, epochs=2), task, tmp_path / "clipped", progress=False)
    seen = []

    def measure(optimizer, args, kwargs):  # the norm of the gradient the optimizer actually applies
        seen.append(float(torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(p.grad) for p in trainer.model.parameters() if p.grad is not None]))))

    trainer.optimizer.register_step_pre_hook(measure)
    trainer.fit(train, valid)
    recorded = np.array([x for h in trainer.history for x in h["step_grad_norm"]])
    scaled_down = np.array(seen) < recorded * (1 - 1e-5)
    assert len(seen) == recorded.size == 8 and 0 < scaled_down.sum() < 8
    assert clipping.clipped_share(recorded, threshold) * recorded.size == scaled_down.sum()
    np.testing.assert_allclose(seen, np.minimum(recorded, threshold), rtol=1e-4)


def test_since_change_and_accuracy_by_stretch_on_a_hand_made_clip():
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 0, 0])
    assert cells.since_change(labels).tolist() == [0, 1, 2, 0, 1, 2, 3, 0, 1]
    scores = np.array([0.9, 0.1, 0.1, 0.2, 0.2, 0.8, 0.8, 0.1, 0.1])  # misses the first 2 speech frames
    out = cells.accuracy_by_stretch([(scores, labels, {})], frame_s=0.1)  # bins 0-0.1, 0.1-0.3, 0.3-1 s
    assert out["speech_frames"][:3] == [1, 2, 1] and out["speech"][:3] == [0.0, 0.5, 1.0]
    assert out["silence_frames"][:3] == [2, 3, 0] and out["silence"][:2] == [0.5, 1.0]
    assert math.isnan(out["silence"][2])
    assert out["auc"][:2] == [0.5, 1.0] and math.isnan(out["auc"][2])  # bin 0: 0.2 beats 0.1, loses to 0.9


# -- end to end on a tiny real corpus ------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """Work and cache folders shared by the end-to-end tests (the runs of one are reused by the others)."""
    root = tmp_path_factory.mktemp("experiments")
    return root / "work", root / "cache"


def run_cli(which: str, out, quick) -> None:
    work, cache = quick
    args = build_parser().parse_args(["experiment", which, "--quick", "--out", str(out), "--work", str(work),
                                      "--cache", str(cache), "--jobs", "1", "--quiet"])
    assert args.run(args) == 0


@pytest.mark.slow  # builds a tiny corpus with the TTS engines
def test_gradients_experiment_writes_curves_tables_and_plots(tmp_path, quick):
    run_cli("gradients", tmp_path, quick)
    res = json.loads((tmp_path / "gradients.json").read_text())
    assert set(res["cells"]) == set(CELLS)
    for e in res["cells"].values():
        for curve in (*e["init"], *e["trained"]):
            assert len(curve["relative"]) == res["frames"] and curve["relative"][0] == 1.0
        assert all(len(n) > 0 for n in e["grad_norm_steps"])
    assert {"gradient-flow.png", "gradient-norms.png", "gradients.md"} <= {p.name for p in tmp_path.iterdir()}


@pytest.mark.slow
def test_clipping_experiment_writes_both_studies(tmp_path, quick):
    run_cli("clipping", tmp_path, quick)
    res = json.loads((tmp_path / "clipping.json").read_text())
    assert set(res["studies"]) == set(clipping.STUDIES)
    gru = res["studies"]["gru"]["settings"]
    assert [s["clip_norm"] for s in gru.values()] == list(clipping.STUDIES["gru"]["clip_norms"])
    assert all(len(s["roc_auc"]) == 2 for s in gru.values())  # two seeds in --quick
    assert (tmp_path / "clipping.png").stat().st_size > 0 and "steps clipped" in (tmp_path / "clipping.md").read_text()


@pytest.mark.slow
def test_cells_experiment_writes_accuracy_speed_and_stretch_tables(tmp_path, quick):
    run_cli("cells", tmp_path, quick)
    res = json.loads((tmp_path / "cells.json").read_text())
    budget = res["cells"]["gru"]["parameters"]
    for e in res["cells"].values():
        assert abs(e["parameters"] / budget - 1) < 0.03 and e["rtf"] > 0 and e["streams_per_core"] >= 0
        assert len(e["overall"]["roc_auc"]) == 2 and e["bands"]
    md = (tmp_path / "cells.md").read_text()
    assert "per SNR band" in md and "since the stretch began" in md
    assert (tmp_path / "cells-bands.png").is_file() and (tmp_path / "cells-stretch.png").is_file()


@pytest.mark.slow  # runs the example in a subprocess
def test_gradient_flow_example_prints_a_curve_for_the_shipped_and_the_fresh_models(quick):
    work, cache = quick
    valid = Workspace(QUICK, work, cache, jobs=1, progress=False).corpus / "valid"
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(root / "examples" / "gradient_flow.py"), "--data", str(valid),
                           "--seconds", "2", "--clips", "2"], capture_output=True, text=True, timeout=120, cwd=root)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if "trained" in line or "initialisation" in line]
    assert len(rows) == 4 and "vad-uni (gru 64, trained)" in rows[0], done.stdout
