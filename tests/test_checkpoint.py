"""One checkpoint file rebuilds a model; damaged or foreign files give errors naming the file."""

from __future__ import annotations

import pytest
import torch

from conftest import make_model, noisy_tone
from streamseq import CheckpointError, load_model
from streamseq.features import compute_features
from streamseq.models import StreamingGRU, save_checkpoint
from streamseq.models.checkpoint import FORMAT_VERSION


@pytest.mark.parametrize("kind,delay", [("uni", 0), ("uni", 4), ("bi", 0)])
def test_checkpoint_round_trip_rebuilds_the_same_model(tmp_path, kind, delay):
    model = make_model(kind, delay=delay, seed=3)
    model.task, model.labels = "vad", ["speech"]
    path = save_checkpoint(model, tmp_path / "m.pt", metadata={"seed": 3})
    loaded = load_model(path)
    assert loaded.config == model.config and loaded.feature_config == model.feature_config
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


def test_loaded_uni_model_is_a_streaming_gru(tmp_path):
    assert isinstance(load_model(save_checkpoint(make_model("uni"), tmp_path / "u.pt")), StreamingGRU)
