"""Recurrent frame models: a streamable unidirectional RNN and a buffered bidirectional one.

Dimension legend: B batch, T frames, F features (log-mel bins), H hidden size, L layers,
D directions, C outputs per frame, S state width (:attr:`ModelConfig.state_size`). Inputs are
*raw* log-mel frames; each model normalises them with fixed global statistics it stores as
buffers (saved in the checkpoint) and, if its config asks, a causal running mean per mel bin
(:class:`RunningMean`, :attr:`ModelConfig.normalization`).

The recurrent layer is ``nn.GRU``, ``nn.LSTM`` or ``nn.RNN`` (tanh), after ``config.cell``.
A stream's state is ONE tensor ``(L, B, S)`` whatever the cell: the hidden state ``h`` for a
GRU or RNN (S = H); for an LSTM its hidden and cell states packed side by side on the last
axis, ``h`` then ``c`` (S = 2H). A running normalisation adds F columns after those, where
layer 0's row holds the running mean (the other rows stay zero). :meth:`StreamingRNN.step`
packs and unpacks it, so sessions, the engine and exported steps carry one array per stream and
never ask which cell or normalisation it is.
"""

from __future__ import annotations

import math
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


class RunningMean(nn.Module):
    """Causal exponential running mean per feature: ``d[t] = a d[t-1] + (1 - a) x[t]`` from
    ``d[-1] = start`` (zeros for a new stream), returned as ``x - d``.

    The recurrence runs as a frozen one-layer ReLU ``nn.RNN`` (weights ``(1 - a) I`` and ``a I``)
    over ``x + OFFSET``: with every value positive the ReLU never bites, so it is the exact linear
    recurrence, and it exports as one native recurrent node (TorchScript and ONNX) for any length.
    """

    # Globally normalised log-mel stays within a few units of zero (log(1e-6) floors the raw features), far
    # above -OFFSET; an input below it would only hold the mean at -OFFSET for that frame.
    OFFSET = 50.0

    def __init__(self, features: int, decay: float) -> None:
        super().__init__()
        self.rnn = nn.RNN(features, features, 1, nonlinearity="relu", batch_first=True)
        eye = torch.eye(features)
        self.rnn.load_state_dict({"weight_ih_l0": (1.0 - decay) * eye, "weight_hh_l0": decay * eye,
                                  "bias_ih_l0": torch.full((features,), (1.0 - decay) * self.OFFSET),
                                  "bias_hh_l0": torch.zeros(features)})
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor, start: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (B, T, F)``, ``start (1, B, F)`` (the mean before frame 0; None: zeros) ->
        ``(x - d (B, T, F), d at the last frame (1, B, F))``."""
        if start is None:
            start = x.new_zeros(1, x.shape[0], x.shape[2])
        shifted, last = self.rnn(x, start + self.OFFSET)  # d + OFFSET
        return x - shifted + self.OFFSET, last - self.OFFSET


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
        self.running_mean = None if config.normalization == "global" else RunningMean(
            config.n_inputs, math.exp(-feature_config.frame_shift_s / config.norm_time_s))
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

    def normalize(
        self, frames: torch.Tensor, start: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Raw frames ``(B, T, F)`` -> the recurrent layer's inputs ``(B, T, F)`` (see
        :attr:`ModelConfig.normalization`), and the running mean at the last frame ``(1, B, F)``
        (None with global normalisation). ``start`` ``(1, B, F)`` continues a running mean (None: a new stream)."""
        x = (frames - self.feat_mean) / self.feat_std
        if self.running_mean is None:
            return x, None
        return self.running_mean(x, start)

    def padding_frames(self, count: int) -> torch.Tensor:
        """``(count, F)`` raw frames at the global mean, used to pad and flush (with global normalisation they
        normalise to exactly zero)."""
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

    def _inputs(self, frames: torch.Tensor, lengths: torch.Tensor | None, pad: int = 0) -> torch.Tensor:
        """Normalised inputs of a padded batch ``(B, T, F)``: frames past each item's length, and
        ``pad`` more at the end, read as :meth:`padding_frames` (as a stream's flush feeds them)."""
        if lengths is not None:
            valid = torch.arange(frames.shape[1], device=frames.device)[None, :] < lengths.to(frames.device)[:, None]
            frames = torch.where(valid[..., None], frames, self.feat_mean)
        if pad:
            frames = torch.cat([frames, self.feat_mean.expand(frames.shape[0], pad, -1)], dim=1)
        return self.normalize(frames)[0]


class StreamingRNN(FrameModel):
    """Unidirectional RNN (any cell) with optional output delay; ``step`` carries the state."""

    streaming = True
    first_row: torch.Tensor  # (L, 1, 1) buffer: packs the running mean into layer 0's row of the state

    def __init__(self, config: ModelConfig, feature_config: FeatureConfig = FeatureConfig()) -> None:
        if config.kind != "uni":
            raise ValueError(f"StreamingRNN needs kind='uni'; received {config.kind!r}")
        super().__init__(config, feature_config)
        # 1 for layer 0, 0 for the others; not saved (derived from the config), a constant in exported steps
        first_row = torch.zeros(config.num_layers, 1, 1)
        first_row[0] = 1.0
        self.register_buffer("first_row", first_row, persistent=False)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits for every frame of a padded batch.

        Args:
            frames: ``(B, T, F)`` raw log-mel. lengths: ``(B,)`` valid frames per item.
        Returns:
            ``(B, T, C)``; row t is the output for frame t, computed from frames ``<= t + k``.
        """
        k = self.config.output_delay
        y, _ = self.rnn(self._inputs(frames, lengths, pad=k))  # (B, T + k, H): k padding frames at the end
        return self.head(y[:, k:])

    def step(
        self, frames: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance the recurrence over new frames.

        Args:
            frames: ``(B, n, F)`` raw log-mel frames. state: ``(L, B, S)`` or None (start, zeros);
                for an LSTM ``S = 2H``, ``h`` then ``c`` on the last axis; a running normalisation's
                mean in F more columns (see the module doc).
        Returns:
            ``(logits (B, n, C), state (L, B, S))``. With an output delay of k, the i-th logit of
            a stream's j-th step belongs to frame ``j - k`` (the first k are warm-up, discarded
            by sessions); feed :meth:`padding_frames` (k) at end of input to flush.
        """
        packed, start = state, None
        if state is not None and self.running_mean is not None:  # the running mean rides after the cell's columns
            packed, means = state.split([self.config.cell_state_size, self.config.n_inputs], dim=-1)
            packed, start = packed.contiguous(), means[:1]
        x, last = self.normalize(frames, start)
        hx: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = packed
        if packed is not None and self.config.cell == "lstm":
            h, c = packed.chunk(2, dim=-1)  # (L, B, H) each
            hx = (h.contiguous(), c.contiguous())
        y, hx = self.rnn(x, hx)
        new = torch.cat(hx, dim=-1) if isinstance(hx, tuple) else hx
        if last is not None:  # the running mean rides in layer 0's last F columns
            new = torch.cat([new, last * self.first_row], dim=-1)
        return self.head(y), new


class BidirectionalRNN(FrameModel):
    """Bidirectional RNN (any cell): needs the whole utterance, so it has no streaming step."""

    def __init__(self, config: ModelConfig, feature_config: FeatureConfig = FeatureConfig()) -> None:
        if config.kind != "bi":
            raise ValueError(f"BidirectionalRNN needs kind='bi'; received {config.kind!r}")
        super().__init__(config, feature_config)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, T, F)`` raw frames + ``(B,)`` lengths -> ``(B, T, C)`` logits (padding ignored)."""
        x = self._inputs(frames, lengths)
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
