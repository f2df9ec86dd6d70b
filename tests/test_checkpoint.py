"""One checkpoint file rebuilds a model; damaged or foreign files give errors naming the file."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest
import torch

from conftest import make_model, noisy_tone
from streamseq import CheckpointError, load_model
from streamseq.cli.main import build_parser
from streamseq.cli.train import config_from_args
from streamseq.features import compute_features
from streamseq.models import StreamingRNN, save_checkpoint
from streamseq.models.checkpoint import FORMAT_VERSION, pretrained_path
from streamseq.models.config import CELLS
from streamseq.training.config import TrainConfig


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("kind,delay", [("uni", 0), ("uni", 4), ("bi", 0)])
def test_checkpoint_round_trip_rebuilds_the_same_model(tmp_path, kind, delay, cell):
    model = make_model(kind, delay=delay, seed=3, hidden=8, cell=cell)
    model.task, model.labels = "vad", ["speech"]
    path = save_checkpoint(model, tmp_path / "m.pt", metadata={"seed": 3})
    loaded = load_model(path)
    assert loaded.config == model.config and loaded.feature_config == model.feature_config
    assert loaded.config.cell == cell and type(loaded.rnn) is type(model.rnn)
    assert loaded.metadata == {"seed": 3} and loaded.labels == ["speech"]
    feats = compute_features(noisy_tone(0.3))[None]
    with torch.inference_mode():
        assert torch.equal(loaded(feats), model(feats))
    assert torch.equal(loaded.feat_mean, model.feat_mean)


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="nope.pt does not exist"):
        load_model(tmp_path / "nope.pt")


def test_truncated_checkpoint_is_reported(tmp_path):
    path = save_checkpoint(make_model(), tmp_path / "m.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="m.pt cannot be read"):
        load_model(path)


def test_foreign_files_are_not_streamseq_checkpoints(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="other.pt is not a streamseq checkpoint"):
        load_model(tmp_path / "other.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CheckpointError, match="text.pt"):
        load_model(tmp_path / "text.pt")


def test_incompatible_format_version_is_refused(tmp_path):
    path = save_checkpoint(make_model(), tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = FORMAT_VERSION + 1
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="format version"):
        load_model(path)


def test_loaded_uni_model_is_a_streaming_model(tmp_path):
    assert isinstance(load_model(save_checkpoint(make_model("uni"), tmp_path / "u.pt")), StreamingRNN)


def test_a_checkpoint_written_before_cells_and_running_normalisation_loads_as_the_same_gru(tmp_path):
    model = make_model("uni", delay=2, seed=5)
    payload = torch.load(save_checkpoint(model, tmp_path / "m.pt"), weights_only=True)
    for key in ("cell", "normalization", "norm_time_s"):  # what checkpoints written before these fields hold
        del payload["model"][key]
    payload["state_dict"] = {k.replace("rnn.", "gru.", 1): v for k, v in payload["state_dict"].items()}
    torch.save(payload, tmp_path / "old.pt")
    loaded = load_model(tmp_path / "old.pt")
    assert loaded.config == model.config and loaded.config.cell == "gru" and isinstance(loaded.rnn, torch.nn.GRU)
    assert loaded.config.normalization == "global" and loaded.running_mean is None
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    feats = compute_features(noisy_tone(0.3))[None]
    with torch.inference_mode():
        assert torch.equal(loaded(feats), model(feats))


def test_shipped_models_load_as_grus_whether_written_before_cells_or_after():
    for path in pretrained_path("vad-uni").parent.glob("*.pt"):
        model = load_model(path)
        assert model.config.cell == "gru" and isinstance(model.rnn, torch.nn.GRU), path.name


def test_every_shipped_model_records_the_settings_of_its_command_in_the_training_script():
    """scripts/train_shipped_models.sh (with DRY_RUN=1 it prints its commands) trains every shipped
    model, and each checkpoint's train_config is exactly what its command sets."""
    root = Path(__file__).resolve().parents[1]
    printed = subprocess.run(["bash", "scripts/train_shipped_models.sh"], cwd=root, env=os.environ | {"DRY_RUN": "1"},
                             capture_output=True, text=True, check=True).stdout
    parser, trained = build_parser(), set()
    for line in printed.splitlines():
        if line.startswith("== "):
            continue
        args = parser.parse_args(shlex.split(line)[1:])  # after the streamseq executable
        name = args.install_as.stem
        recorded = {**TrainConfig().to_dict(), **load_model(name).metadata["train_config"]}  # older: defaults
        assert recorded == config_from_args(args).to_dict(), name
        trained.add(name)
    assert trained == {p.stem for p in pretrained_path("vad-uni").parent.glob("*.pt")}
