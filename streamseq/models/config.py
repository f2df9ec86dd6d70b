"""Model configuration, stored inside every checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

ModelKind = Literal["uni", "bi"]
Activation = Literal["sigmoid", "log_softmax", "identity"]


@dataclass(frozen=True)
class ModelConfig:
    """Recurrent frame classifier.

    Attributes:
        kind: ``"uni"`` (causal, streamable) or ``"bi"`` (needs the whole utterance).
        n_inputs: feature dimension F (log-mel bins).
        hidden_size, num_layers: GRU size (per direction).
        n_outputs: C, outputs per frame (1 for VAD).
        output_delay: k frames of lookahead (uni only): the output for frame t is computed after
            seeing frames up to t + k, so it is emitted k * 10 ms late.
        activation: maps logits to the values a session returns (task-dependent).
    """

    kind: ModelKind = "uni"
    n_inputs: int = 40
    hidden_size: int = 64
    num_layers: int = 2
    n_outputs: int = 1
    output_delay: int = 0
    activation: Activation = "sigmoid"

    def __post_init__(self) -> None:
        if self.kind not in ("uni", "bi"):
            raise ValueError(f"kind must be 'uni' or 'bi'; received {self.kind!r}")
        if self.output_delay < 0:
            raise ValueError(f"output_delay must be >= 0 frames; received {self.output_delay}")
        if self.kind == "bi" and self.output_delay:
            raise ValueError("output_delay applies to 'uni' models only; a 'bi' model sees the whole input")
        for name in ("n_inputs", "hidden_size", "num_layers", "n_outputs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; received {getattr(self, name)}")
        if self.activation not in ("sigmoid", "log_softmax", "identity"):
            raise ValueError(f"unknown activation {self.activation!r}")

    def to_dict(self) -> dict:
        return asdict(self)
