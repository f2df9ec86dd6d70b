"""Recurrent frame models: a streamable unidirectional RNN and a buffered bidirectional one.

Dimension legend: B batch, T frames, F features (log-mel bins), H hidden size, L layers,
D directions, C outputs per frame, S state width (:attr:`ModelConfig.state_size`). Inputs are
*raw* log-mel frames; each model normalises them with fixed global statistics it stores as
buffers (saved in the checkpoint).

The recurrent layer is ``nn.GRU``, ``nn.LSTM`` or ``nn.RNN`` (tanh), after ``config.cell``.
A stream's state is ONE tensor ``(L, B, S)`` whatever the cell: the hidden state ``h`` for a
GRU or RNN (S = H); for an LSTM its hidden and cell states packed side by side on the last
axis, ``h`` then ``c`` (S = 2H). :meth:`StreamingRNN.step` packs and unpacks it, so sessions,
the engine and exported steps carry one array per stream and never ask which cell it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from streamseq.features.config import FeatureConfig
from streamseq.models.config import ModelConfig

_LAYERS: dict[str, Callable[..., nn.RNNBase]] = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}  # by ModelConfig.cell


def _rename_legacy_keys(module: nn.Module, state_dict: dict, prefix: str, *args: Any) -> None:
    """Checkpoints written before ``ModelConfig.cell`` existed (all GRUs) name the recurrent
    layer ``gru``; it is ``rnn`` now. Their weights load unchanged under the new name."""
    old = prefix + "gru."
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[prefix + "rnn." + key[len(old):]] = state_dict.pop(key)


class FrameModel(nn.Module):
    """Shared shell: normalisation buffers, recurrent layer, per-frame head, output activation."""

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
        self.rnn = _LAYERS[config.cell](
            config.n_inputs, config.hidden_size, config.num_layers,
            batch_first=True, bidirectional=directions == 2,
        )
        self.head = nn.Linear(config.hidden_size * directions, config.n_outputs)
        if config.cell == "gru":
            self.register_load_state_dict_pre_hook(_rename_legacy_keys)

    @property
    def lookahead_ms(self) -> float | None:
        """How far past a frame its output looks, ms: the output delay of a streaming model; None for a
        bidirectional one, which sees the whole input."""
        if not self.streaming:
            return None
        return 1000.0 * self.config.output_delay * self.feature_config.frame_shift_s

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
        if self.config.activation == "log_softmax_sigmoid":
            return torch.cat([torch.log_softmax(logits[..., :-1], dim=-1), torch.sigmoid(logits[..., -1:])], dim=-1)
        return logits

    def _masked(self, frames: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        x = self.normalize(frames)  # (B, T, F)
        if lengths is None:
            return x
        valid = torch.arange(x.shape[1], device=x.device)[None, :] < lengths.to(x.device)[:, None]
        return x * valid[..., None]


class StreamingRNN(FrameModel):
    """Unidirectional RNN (any cell) with optional output delay; ``step`` carries the state."""

    streaming = True

    def __init__(self, config: ModelConfig, feature_config: FeatureConfig = FeatureConfig()) -> None:
        if config.kind != "uni":
            raise ValueError(f"StreamingRNN needs kind='uni'; received {config.kind!r}")
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
        y, _ = self.rnn(x)  # (B, T + k, H)
        return self.head(y[:, k:])

    def step(
        self, frames: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance the recurrence over new frames.

        Args:
            frames: ``(B, n, F)`` raw log-mel frames. state: ``(L, B, S)`` or None (start, zeros);
                for an LSTM ``S = 2H``, ``h`` then ``c`` on the last axis (see the module doc).
        Returns:
            ``(logits (B, n, C), state (L, B, S))``. With an output delay of k, the i-th logit of
            a stream's j-th step belongs to frame ``j - k`` (the first k are warm-up, discarded
            by sessions); feed :meth:`padding_frames` (k) at end of input to flush.
        """
        hx: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = state
        if state is not None and self.config.cell == "lstm":
            h, c = state.chunk(2, dim=-1)  # (L, B, H) each
            hx = (h.contiguous(), c.contiguous())
        y, hx = self.rnn(self.normalize(frames), hx)
        return self.head(y), torch.cat(hx, dim=-1) if isinstance(hx, tuple) else hx


class BidirectionalRNN(FrameModel):
    """Bidirectional RNN (any cell): needs the whole utterance, so it has no streaming step."""

    def __init__(self, config: ModelConfig, feature_config: FeatureConfig = FeatureConfig()) -> None:
        if config.kind != "bi":
            raise ValueError(f"BidirectionalRNN needs kind='bi'; received {config.kind!r}")
        super().__init__(config, feature_config)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, T, F)`` raw frames + ``(B,)`` lengths -> ``(B, T, C)`` logits (padding ignored)."""
        x = self._masked(frames, lengths)
        if lengths is None or bool((lengths == x.shape[1]).all()):
            y, _ = self.rnn(x)  # no padding: the (much faster) unpacked path
        else:
            packed = nn.utils.rnn.pack_padded_sequence(
                x, lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            y, _ = self.rnn(packed)
            y, _ = nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=x.shape[1])
        return self.head(y)


def build_model(config: ModelConfig, feature_config: FeatureConfig = FeatureConfig()) -> FrameModel:
    """The model class for ``config.kind`` (the cell is ``config.cell``)."""
    cls = StreamingRNN if config.kind == "uni" else BidirectionalRNN
    return cls(config, feature_config)
