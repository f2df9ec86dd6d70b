"""Model configuration, stored inside every checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

ModelKind = Literal["uni", "bi"]
Cell = Literal["gru", "lstm", "rnn"]
CELLS: tuple[Cell, ...] = ("gru", "lstm", "rnn")
Activation = Literal["sigmoid", "log_softmax", "log_softmax_sigmoid", "identity"]
Normalization = Literal["global", "running"]
NORMALIZATIONS: tuple[Normalization, ...] = ("global", "running")


@dataclass(frozen=True)
class ModelConfig:
    """Recurrent frame classifier.

    Attributes:
        kind: ``"uni"`` (causal, streamable) or ``"bi"`` (needs the whole utterance).
        cell: the recurrent layer: ``"gru"``, ``"lstm"`` or ``"rnn"`` (``nn.RNN``, tanh).
            Checkpoints written before this field existed are GRUs.
        n_inputs: feature dimension F (log-mel bins).
        hidden_size, num_layers: recurrent layer size H (per direction) and depth L.
        n_outputs: C, outputs per frame (1 for VAD).
        output_delay: k frames of lookahead (uni only): the output for frame t is computed after
            seeing frames up to t + k, so it is emitted k * 10 ms late.
        activation: maps logits to the values a session returns (task-dependent):
            ``"log_softmax_sigmoid"`` is log_softmax over every output but the last and a sigmoid on
            the last (CTC token log-probabilities plus one detection probability).
        normalization: how raw log-mel frames are scaled before the recurrent layer: ``"global"``
            (minus the training-set mean, over its std) or ``"running"`` (then minus a causal
            running mean per mel bin, an exponential average with time constant ``norm_time_s``
            that starts at zero). The running mean makes the model blind to level and steady
            spectral colour once it has settled.
        norm_time_s: time constant of the running mean, seconds.
    """

    kind: ModelKind = "uni"
    cell: Cell = "gru"
    n_inputs: int = 40
    hidden_size: int = 64
    num_layers: int = 2
    n_outputs: int = 1
    output_delay: int = 0
    activation: Activation = "sigmoid"
    normalization: Normalization = "global"
    norm_time_s: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("uni", "bi"):
            raise ValueError(f"kind must be 'uni' or 'bi'; received {self.kind!r}")
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}; received {self.cell!r}")
        if self.output_delay < 0:
            raise ValueError(f"output_delay must be >= 0 frames; received {self.output_delay}")
        if self.kind == "bi" and self.output_delay:
            raise ValueError("output_delay applies to 'uni' models only; a 'bi' model sees the whole input")
        for name in ("n_inputs", "hidden_size", "num_layers", "n_outputs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; received {getattr(self, name)}")
        if self.activation not in ("sigmoid", "log_softmax", "log_softmax_sigmoid", "identity"):
            raise ValueError(f"unknown activation {self.activation!r}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)}; "
                             f"received {self.normalization!r}")
        if not self.norm_time_s > 0:
            raise ValueError(f"norm_time_s must be > 0 seconds; received {self.norm_time_s}")
        if self.activation == "log_softmax_sigmoid" and self.n_outputs < 3:
            raise ValueError(f"log_softmax_sigmoid needs >= 3 outputs (2+ tokens and a detection score); "
                             f"received {self.n_outputs}")

    @property
    def cell_state_size(self) -> int:
        """The recurrent cell's part of a stream's state: H, or 2H for an LSTM (``h`` then ``c``)."""
        return 2 * self.hidden_size if self.cell == "lstm" else self.hidden_size

    @property
    def state_size(self) -> int:
        """S, the width of a stream's state ``(L, B, S)``: :attr:`cell_state_size`, plus F columns
        for the running mean (in layer 0's row; zeros in the others) unless normalisation is global."""
        return self.cell_state_size + (0 if self.normalization == "global" else self.n_inputs)

    def to_dict(self) -> dict:
        return asdict(self)
