"""Recurrent frame models: a streamable unidirectional GRU and a buffered bidirectional GRU.

Dimension legend: B batch, T frames, F features (log-mel bins), H hidden size, L layers,
D directions, C outputs per frame. Inputs are *raw* log-mel frames; each model normalises
them with fixed global statistics it stores as buffers (saved in the checkpoint).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from streamseq.features.config import FeatureConfig
from streamseq.models.config import ModelConfig


class FrameModel(nn.Module):
    """Shared shell: normalisation buffers, GRU, per-frame head, output activation."""

    streaming: bool = False
    feat_mean: torch.Tensor  # (F,) buffers: global feature statistics
    feat_std: torch.Tensor

    def __init__(self, config: ModelConfig, feature_config: FeatureConfig = FeatureConfig()) -> None:
        super().__init__()
        if config.n_inputs != feature_config.n_mels:
            raise ValueError(
                f"model expects {config.n_inputs} inputs but features have {feature_config.n_mels} mel bins"
            )
        self.config = config
        self.feature_config = feature_config
        self.task: str = ""  # what the outputs mean: set_task (the Trainer, load_model), saved in the checkpoint
        self.labels: list[str] = []
        self.task_config: dict = {}
        self.metadata: dict = {}
        self.register_buffer("feat_mean", torch.zeros(config.n_inputs))
        self.register_buffer("feat_std", torch.ones(config.n_inputs))
        directions = 2 if config.kind == "bi" else 1
        self.gru = nn.GRU(
            config.n_inputs, config.hidden_size, config.num_layers,
            batch_first=True, bidirectional=directions == 2,
        )
        self.head = nn.Linear(config.hidden_size * directions, config.n_outputs)

    def set_task(self, name: str, labels: Sequence[str], task_config: Mapping | None = None) -> None:
        """Mark the model as trained for task ``name`` with one output per label; ``task_config``
        holds the task's inference settings (e.g. VAD's segmenter thresholds), plain JSON-like values."""
        if len(labels) != self.config.n_outputs:
            raise ValueError(f"expected {self.config.n_outputs} labels, one per model output; "
                             f"received {len(labels)}: {list(labels)}")
        self.task, self.labels, self.task_config = name, list(labels), dict(task_config or {})

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store global feature statistics ``(F,)`` (computed once on training data)."""
        self.feat_mean.copy_(mean)
        self.feat_std.copy_(std.clamp_min(1e-3))

    def normalize(self, frames: torch.Tensor) -> torch.Tensor:
        return (frames - self.feat_mean) / self.feat_std

    def padding_frames(self, count: int) -> torch.Tensor:
        """``(count, F)`` raw frames that normalise to exactly zero (used to pad and flush)."""
        return self.feat_mean.expand(count, -1).clone()

    def activate(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits ``(..., C)`` -> the values users see (probabilities for VAD)."""
        if self.config.activation == "sigmoid":
            return torch.sigmoid(logits)
        if self.config.activation == "log_softmax":
            return torch.log_softmax(logits, dim=-1)
        return logits

    def _masked(self, frames: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        x = self.normalize(frames)  # (B, T, F)
        if lengths is None:
            return x
        valid = torch.arange(x.shape[1], device=x.device)[None, :] < lengths.to(x.device)[:, None]
        return x * valid[..., None]


class StreamingGRU(FrameModel):
    """Unidirectional GRU with optional output delay; ``step`` carries the hidden state."""

    streaming = True

    def __init__(self, config: ModelConfig, feature_config: FeatureConfig = FeatureConfig()) -> None:
        if config.kind != "uni":
            raise ValueError(f"StreamingGRU needs kind='uni'; received {config.kind!r}")
        super().__init__(config, feature_config)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits for every frame of a padded batch.

        Args:
            frames: ``(B, T, F)`` raw log-mel. lengths: ``(B,)`` valid frames per item.
        Returns:
            ``(B, T, C)``; row t is the output for frame t, computed from frames ``<= t + k``.
        """
        k = self.config.output_delay
        x = self._masked(frames, lengths)
        if k:
            x = torch.nn.functional.pad(x, (0, 0, 0, k))  # k zero (normalised) frames
        y, _ = self.gru(x)  # (B, T + k, H)
        return self.head(y[:, k:])

    def step(
        self, frames: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance the recurrence over new frames.

        Args:
            frames: ``(B, n, F)`` raw log-mel frames. state: ``(L, B, H)`` or None (start).
        Returns:
            ``(logits (B, n, C), state (L, B, H))``. With an output delay of k, the i-th logit of
            a stream's j-th step belongs to frame ``j - k`` (the first k are warm-up, discarded
            by sessions); feed :meth:`padding_frames` (k) at end of input to flush.
        """
        y, state = self.gru(self.normalize(frames), state)
        return self.head(y), state


class BidirectionalGRU(FrameModel):
    """Bidirectional GRU: needs the whole utterance, so it has no streaming step."""

    def __init__(self, config: ModelConfig, feature_config: FeatureConfig = FeatureConfig()) -> None:
        if config.kind != "bi":
            raise ValueError(f"BidirectionalGRU needs kind='bi'; received {config.kind!r}")
        super().__init__(config, feature_config)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, T, F)`` raw frames + ``(B,)`` lengths -> ``(B, T, C)`` logits (padding ignored)."""
        x = self._masked(frames, lengths)
        if lengths is None or bool((lengths == x.shape[1]).all()):
            y, _ = self.gru(x)  # no padding: the (much faster) unpacked path
        else:
            packed = nn.utils.rnn.pack_padded_sequence(
                x, lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            y, _ = self.gru(packed)
            y, _ = nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=x.shape[1])
        return self.head(y)


def build_model(config: ModelConfig, feature_config: FeatureConfig = FeatureConfig()) -> FrameModel:
    """The model class for ``config.kind``."""
    cls = StreamingGRU if config.kind == "uni" else BidirectionalGRU
    return cls(config, feature_config)
