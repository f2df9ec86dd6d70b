"""Voice activity detection as a task: one output per frame, masked binary cross-entropy."""

from __future__ import annotations

import numpy as np
import torch

from streamseq.models.config import Activation
from streamseq.tasks.base import valid_mask
from streamseq.tasks.vad.metrics import frame_metrics, roc_auc


class VADTask:
    """Speech / non-speech per 10 ms frame. Targets are ``(B, T)`` floats in {0, 1}."""

    name = "vad"
    labels = ["speech"]
    activation: Activation = "sigmoid"
    primary_metric = "roc_auc"

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = valid_mask(lengths, logits.shape[1])
        per_frame = torch.nn.functional.binary_cross_entropy_with_logits(
            logits[..., 0], targets.float(), reduction="none"
        )
        return (per_frame * mask).sum() / mask.sum().clamp_min(1)

    def metrics(self, outputs: list[np.ndarray], targets: list[np.ndarray], metas: list[dict]) -> dict:
        scores = np.concatenate([o[:, 0] for o in outputs])
        labels = np.concatenate(targets).astype(np.uint8)
        result = frame_metrics(scores, labels)
        return {"roc_auc": roc_auc(scores, labels), "f1": result["f1"],
                "miss_rate": result["miss_rate"], "false_alarm_rate": result["false_alarm_rate"]}
