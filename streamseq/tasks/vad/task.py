"""Voice activity detection as a task: one speech probability per frame, masked binary cross-entropy,
the incremental :class:`~streamseq.tasks.vad.postprocess.Segmenter` as its decoder.

Dimension legend: B batch, T frames, C outputs per frame (1: ``speech``), n frames of one chunk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from streamseq.models.config import Activation
from streamseq.tasks.base import Writers, valid_mask
from streamseq.tasks.vad.metrics import frame_metrics, roc_auc
from streamseq.tasks.vad.postprocess import SETTINGS, SegmentEvent, Segmenter, SegmenterConfig, configure
from streamseq.tasks.vad.writers import SPEECH, VADWriters, speech_column

if TYPE_CHECKING:
    from streamseq.models.recurrent import FrameModel
    from streamseq.training.config import TrainConfig



class SpeechDecoder:
    """The VAD decoder: a :class:`Segmenter` over the speech column of a model's outputs ``(n, C)``."""

    def __init__(self, config: SegmenterConfig, column: int = 0) -> None:
        self.segmenter, self.column = Segmenter(config), column
        self.settings = {"segmenter": asdict(config)}

    @property
    def config(self) -> SegmenterConfig:
        return self.segmenter.config

    def push(self, values: np.ndarray) -> list[SegmentEvent]:
        return self.segmenter.push(values[:, self.column])

    def flush(self) -> list[SegmentEvent]:
        return self.segmenter.flush()


class VADTask:
    """Speech / non-speech per frame. Targets of a clip are ``(T,)`` floats in {0, 1}, one per frame."""

    name = "vad"
    labels = [SPEECH]
    activation: Activation = "sigmoid"
    primary_metric = "roc_auc"
    report_metrics: tuple[str, ...] = ("roc_auc", "f1")
    writers: Writers = VADWriters()

    # -- data --------------------------------------------------------------------------
    def build_data(self, cfg: TrainConfig, cache: Path, jobs: int, progress: bool) -> Path:
        """The VAD corpus (TTS + recordings mixed over backgrounds), see :mod:`streamseq.data.corpus`."""
        from streamseq.data.corpus import build_corpus

        if cfg.speed_perturb:
            raise ValueError(f"--speed-perturb is an option of the digits corpus; the VAD corpus has none "
                             f"(received {cfg.speed_perturb}): leave it at 0")
        return build_corpus(cache, train_hours=cfg.train_hours, valid_hours=cfg.valid_hours,
                            real_hours=cfg.real_hours, seed=cfg.data_seed, jobs=jobs, progress=progress)

    def load_targets(self, split_dir: Path, entry: dict, n_frames: int) -> torch.Tensor:
        """The clip's per-frame labels (``entry["labels"]``, a ``.npy``); one per feature frame."""
        labels = torch.from_numpy(np.load(split_dir / entry["labels"]).astype(np.float32))
        if labels.shape[0] != n_frames:
            raise ValueError(f"{entry['file']}: {labels.shape[0]} label frames but {n_frames} feature frames")
        return labels

    def crop_targets(self, targets: torch.Tensor, start: int, n: int) -> torch.Tensor:
        return targets[start : start + n]

    def collate_targets(self, targets: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """``targets (B, T)`` zero-padded and ``target_lengths (B,)``."""
        return {"targets": torch.nn.utils.rnn.pad_sequence(targets, batch_first=True),
                "target_lengths": torch.tensor([t.shape[0] for t in targets])}

    # -- training ----------------------------------------------------------------------
    def loss(self, logits: torch.Tensor, lengths: torch.Tensor, batch: dict) -> torch.Tensor:
        """Binary cross-entropy of column 0 of logits ``(B, T, C)``, averaged over the valid frames."""
        mask = valid_mask(lengths, logits.shape[1])
        per_frame = torch.nn.functional.binary_cross_entropy_with_logits(
            logits[..., 0], batch["targets"].float(), reduction="none"
        )
        return (per_frame * mask).sum() / mask.sum().clamp_min(1)

    def metrics(self, outputs: list[np.ndarray], targets: list[np.ndarray], metas: list[dict]) -> dict:
        scores = np.concatenate([o[:, 0] for o in outputs])
        labels = np.concatenate(targets).astype(np.uint8)
        result = frame_metrics(scores, labels)
        return {"roc_auc": roc_auc(scores, labels), "f1": result["f1"],
                "miss_rate": result["miss_rate"], "false_alarm_rate": result["false_alarm_rate"]}

    # -- inference ---------------------------------------------------------------------
    def default_task_config(self) -> dict:
        """The :class:`SegmenterConfig` defaults, without the frame shift (the model's features give it)."""
        return {name: getattr(SegmenterConfig(), name) for name in SETTINGS}

    def segmenter_config(self, model: FrameModel, overrides: Mapping[str, Any] | None = None) -> SegmenterConfig:
        """The defaults, then ``model.task_config`` (none in checkpoints older than task configs), then
        ``overrides``; on the model's frame grid."""
        return configure(SegmenterConfig(), model.task_config, overrides,
                         frame_shift_s=model.feature_config.frame_shift_s, what="VAD segmenter")

    def scores(self, model: FrameModel, values: np.ndarray) -> np.ndarray:
        """The speech probability ``(n,)`` of each frame."""
        return values[:, speech_column(model.labels)]

    def decoder(self, model: FrameModel, overrides: Mapping[str, Any] | None = None) -> SpeechDecoder:
        return SpeechDecoder(self.segmenter_config(model, overrides), speech_column(model.labels))


if TYPE_CHECKING:  # mypy checks that VADTask is a Task and a SegmentingTask
    from streamseq.tasks.base import SegmentingTask, Task

    _task: Task = VADTask()
    _segmenting: SegmentingTask = VADTask()
