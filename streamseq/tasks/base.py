"""What a task gives the shared training core: labels, loss, metrics.

The trainer knows nothing task-specific; it calls these three things. A new sequence task
(e.g. keyword recognition with CTC) is a new ``Task`` implementation, not a new trainer.
Dimension legend: B batch, T frames, C outputs per frame.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from streamseq.models.config import Activation


class Task(Protocol):
    name: str
    labels: list[str]  # one name per output column
    activation: Activation
    primary_metric: str  # validation metric that picks the best checkpoint (higher is better)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Mean loss over the valid frames: logits ``(B, T, C)``, targets ``(B, T, ...)``, lengths ``(B,)``."""
        ...

    def metrics(self, outputs: list[np.ndarray], targets: list[np.ndarray], metas: list[dict]) -> dict:
        """Validation metrics from per-utterance activated outputs ``(T, C)`` and targets."""
        ...


def valid_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``(B, T)`` boolean mask of the frames inside each sequence."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]
