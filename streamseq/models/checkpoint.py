"""One checkpoint format for every model: a single file that rebuilds the model alone.

The file (``torch.save`` of plain types and tensors, loaded with ``weights_only=True``) holds:
``format``, ``format_version``, ``streamseq_version``, ``model`` (kind + :class:`ModelConfig`),
``features`` (:class:`FeatureConfig`), ``task`` and ``labels``, ``task_config`` (the task's
inference settings, e.g. VAD's segmenter thresholds), ``state_dict`` (weights and the
normalisation statistics) and free-form ``metadata`` (training command, metrics).

``task_config`` came later within format version 1: a checkpoint without it loads with an empty
one, which the task reads as its defaults (the settings every such model was used with). So did
``model["cell"]`` (GRU, LSTM or RNN): a checkpoint without it is a GRU (its layer's weights are
named ``gru.*``, read as ``rnn.*``) and loads as the very same model it always was.
"""

from __future__ import annotations

import os
import zipfile
from importlib import resources
from pathlib import Path

import torch

from streamseq.features.config import FeatureConfig
from streamseq.models.config import ModelConfig
from streamseq.models.recurrent import FrameModel, build_model
from streamseq.version import __version__

FORMAT = "streamseq-checkpoint"
FORMAT_VERSION = 1
_MODEL_KEYS = ("model", "features", "task", "labels", "state_dict", "metadata")  # what load_model reads


class CheckpointError(ValueError):
    """A checkpoint file is missing, damaged, foreign or from an incompatible version."""


def save_checkpoint(model: FrameModel, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write ``model`` (config, features, normalisation, task, weights) to ``path`` atomically.

    Raises:
        ValueError: the model has no task (``model.set_task``, which the Trainer calls).
    """
    if not model.task:
        raise ValueError(f"cannot save {path}: the model has no task; call model.set_task(name, labels, "
                         "task_config) first (the Trainer does)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "streamseq_version": __version__,
        "model": model.config.to_dict(),
        "features": model.feature_config.to_dict(),
        "task": model.task,
        "labels": list(model.labels),
        "task_config": dict(model.task_config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": dict(metadata if metadata is not None else model.metadata),
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def _pretrained_dir() -> Path:
    return Path(str(resources.files("streamseq") / "pretrained"))


def pretrained_names() -> list[str]:
    """Names of the models shipped inside the package (``vad-uni``, ``vad-bi``, ...)."""
    return sorted(p.stem for p in _pretrained_dir().glob("*.pt"))


def pretrained_path(name: str) -> Path:
    """Path of a model shipped inside the package."""
    return _pretrained_dir() / f"{name}.pt"


def resolve_checkpoint(name_or_path: str | os.PathLike) -> Path:
    """The file behind a model name: a shipped name (``vad-uni-d10``) or a path as given."""
    path = Path(name_or_path)
    if not path.suffix and pretrained_path(str(name_or_path)).is_file():
        return pretrained_path(str(name_or_path))
    return path


def _read(path: Path) -> dict:
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.pt"))
        inside = f"it holds {', '.join(found)}" if found else "`streamseq train --out DIR` writes DIR/best.pt"
        raise CheckpointError(f"checkpoint {path} is a folder, not a file; pass a checkpoint file ({inside})")
    if not path.is_file():
        hint = f"; shipped models: {', '.join(pretrained_names()) or 'none built yet (make models)'}"
        raise CheckpointError(f"checkpoint {path} does not exist{hint}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(
            f"checkpoint {path} cannot be read (truncated or not a torch file): {exc}"
        ) from exc
    except Exception as exc:  # pickle errors for foreign objects
        raise CheckpointError(f"checkpoint {path} holds objects streamseq does not load: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a streamseq checkpoint (expected format {FORMAT!r}); "
            "train one with `streamseq train` or pass a shipped model name"
        )
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {payload.get('format_version')} "
            f"(written by streamseq {payload.get('streamseq_version')}); this streamseq "
            f"{__version__} reads version {FORMAT_VERSION}. Retrain or use a matching streamseq."
        )
    if missing := [key for key in _MODEL_KEYS if key not in payload]:
        raise CheckpointError(
            f"checkpoint {path} has no {', '.join(map(repr, missing))} entry; it was not written by "
            "save_checkpoint (or was edited since): save the model again with save_checkpoint, or retrain"
        )
    return payload


def _check_finite(path: Path, model: FrameModel) -> None:
    """Refuse weights with NaN or inf (a diverged training run): they would give NaN outputs."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(
                f"checkpoint {path}: {name} holds {bad} NaN or infinite value(s) of {tensor.numel()} "
                "(did training diverge?); use an earlier checkpoint or retrain"
            )


def load_model(name_or_path: str | os.PathLike) -> FrameModel:
    """Load a shipped model by name (``"vad-uni"``, ``"vad-bi"``) or a checkpoint file.

    The model comes back in eval mode with ``.config``, ``.feature_config``, ``.task``,
    ``.labels``, ``.task_config`` (empty for checkpoints written before it: the task's defaults)
    and ``.metadata`` set.

    Raises:
        CheckpointError: missing, truncated, foreign, incomplete or version-incompatible file, a
            folder, or weights with NaN/inf (names the file, and the entry or parameter).
    """
    path = resolve_checkpoint(name_or_path)
    payload = _read(path)
    try:
        model = build_model(ModelConfig(**payload["model"]), FeatureConfig(**payload["features"]))
        model.load_state_dict(payload["state_dict"])
        model.set_task(payload["task"], payload["labels"], payload.get("task_config"))
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {path} is inconsistent: {exc}") from exc
    _check_finite(path, model)
    model.metadata = dict(payload["metadata"])
    return model.eval()
