"""Exported steps (TorchScript, ONNX) compute what the eager model computes, for any B and n and every cell."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import make_model, needs_ort
from streamseq.cli.main import main
from streamseq.models import save_checkpoint
from streamseq.models.config import CELLS, NORMALIZATIONS
from streamseq.models.export import (
    OnnxStep,
    StepModule,
    example_inputs,
    export,
    load_torchscript,
    max_abs_diff,
    onnx_available,
    step_function,
    torch_step,
)

FORMATS = ("torchscript", "onnx") if onnx_available() else ("torchscript",)
SHAPES = [(1, 1), (1, 17), (6, 4)]  # (B, n): none is the (2, 3) the step was traced with


@pytest.fixture(scope="module", params=CELLS)
def exported(request, tmp_path_factory):
    model = make_model("uni", delay=2, hidden=24, cell=request.param)
    out = tmp_path_factory.mktemp(f"export-{request.param}")
    return model, export(model, out, FORMATS)


def assert_matches_eager(model, step):
    eager = torch_step(StepModule(model))
    for batch, frames in SHAPES:
        x, h = (t.numpy() for t in example_inputs(model, batch, frames, seed=batch + frames))
        (values, h_new), (ref_values, ref_h) = step(x, h), eager(x, h)
        assert values.shape == (batch, frames, 1) and h_new.shape == h.shape
        assert np.abs(values - ref_values).max() < 1e-5 and np.abs(h_new - ref_h).max() < 1e-5
        assert 0 < values.min() and values.max() < 1  # the sigmoid is inside


def test_torchscript_file_loads_and_matches_eager_for_any_batch_and_frame_count(exported):
    model, paths = exported
    assert_matches_eager(model, torch_step(load_torchscript(paths["torchscript"])))


@needs_ort
def test_onnx_file_runs_in_onnxruntime_and_matches_eager_for_any_batch_and_frame_count(exported):
    model, paths = exported
    assert_matches_eager(model, OnnxStep(paths["onnx"], threads=1))


def test_export_json_records_what_a_deployment_needs(exported):
    model, paths = exported
    meta = json.loads(paths["meta"].read_text())
    assert meta["files"] == {f: {"torchscript": "step.ts", "onnx": "step.onnx"}[f] for f in FORMATS}
    assert meta["output_delay_frames"] == 2 and meta["model"]["cell"] == model.config.cell
    assert meta["state_shape"] == [2, "B", 48 if model.config.cell == "lstm" else 24]
    assert ("h then c" in meta["state"]) == (model.config.cell == "lstm")
    assert meta["features"]["hop_length"] == 160 and meta["inputs"] == ["frames", "h"]
    assert (meta["task"], meta["labels"], meta["task_config"]) == (model.task, model.labels, model.task_config)
    verified = [v for v in meta["max_abs_diff_vs_eager"].values() if v is not None]
    assert verified and max(verified) < 1e-5


def test_a_step_that_disagrees_with_eager_is_caught():
    model = make_model("uni")
    eager = torch_step(StepModule(model))
    assert max_abs_diff(model, eager) == 0.0
    assert max_abs_diff(model, lambda x, h: (eager(x, h)[0] + 1e-3, eager(x, h)[1])) > 1e-4


def test_bidirectional_model_has_no_step_to_export(bi_model):
    with pytest.raises(ValueError, match="only a unidirectional model"):
        StepModule(bi_model)


def test_cli_exports_a_checkpoint_and_refuses_to_overwrite_without_force(tmp_path, capsys):
    checkpoint = save_checkpoint(make_model("uni", hidden=8), tmp_path / "m.pt")
    out = tmp_path / "exported"
    assert main(["export", str(checkpoint), "--out", str(out), "--format", "torchscript"]) == 0
    assert (out / "step.ts").is_file() and (out / "export.json").is_file() and not (out / "step.onnx").exists()
    assert "max |diff| vs eager" in capsys.readouterr().out
    assert main(["export", str(checkpoint), "--out", str(out), "--format", "torchscript"]) == 1
    assert "--force" in capsys.readouterr().err
    assert main(["export", str(checkpoint), "--out", str(out), "--format", "torchscript", "--force"]) == 0


def test_cli_names_a_missing_checkpoint(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "o")]) == 1
    assert "nope.pt does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("norm", NORMALIZATIONS)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("backend", ["torchscript", pytest.param("onnx", marks=needs_ort)])
@pytest.mark.parametrize("inputs", ["frames", "spectrum"])
def test_in_memory_steps_of_every_backend_match_eager(backend, inputs, cell, norm):
    model = make_model("uni", hidden=24, cell=cell, normalization=norm)
    running = 40 if norm == "running" else 0  # the running mean rides in the state, one column per mel bin
    assert model.config.state_size == model.config.cell_state_size + running
    step = step_function(model, backend, threads=1, inputs=inputs)
    assert max_abs_diff(model, step, batch=5, frames=9, inputs=inputs) < 1e-5

