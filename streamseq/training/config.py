"""Training configuration: one dataclass, from flags or a JSON file, saved with each checkpoint."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from streamseq.models.config import CELLS, NORMALIZATIONS, Cell, ModelKind, Normalization


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model (with the corpus seed, the data too)."""

    task: str = "vad"
    kind: ModelKind = "uni"
    cell: Cell = "gru"  # recurrent layer: gru, lstm or rnn (tanh)
    hidden_size: int = 64
    num_layers: int = 2
    output_delay: int = 0  # frames of lookahead (uni only)
    n_mels: int = 40
    normalization: Normalization = "global"  # global or running (ModelConfig.normalization)
    norm_time_s: float = 1.0  # time constant of the running mean
    epochs: int = 12
    max_steps: int = 0  # stop after this many optimiser steps in total (0: no cap)
    batch_size: int = 16
    max_frames: int = 1000  # training crops, in frames (10 s)
    lr: float = 3e-3
    weight_decay: float = 1e-2
    clip_norm: float = 1.0  # global gradient-norm bound; 0 disables clipping
    warmup_steps: int = 100
    seed: int = 0
    threads: int = 2
    train_hours: float = 4.0
    valid_hours: float = 0.3
    real_hours: float = 0.5  # the real-recordings validation split; 0: no Debian recordings beyond the base set
    select_split: str = "real"  # the split whose ROC-AUC picks the best epoch ("real" or "valid")
    data_seed: int = 1234
    speed_perturb: float = 0.0  # digits: share of training strings resampled 0.87-1.15x (tempo, pitch, formants)
    freq_masks: int = 0  # SpecAugment: bands of mel bins per training crop set to the mean (0: none)
    freq_mask_bins: int = 8  # the widest band, in mel bins
    time_masks: int = 0  # SpecAugment: spans of frames per training crop set to the mean (0: none)
    time_mask_frames: int = 20  # the longest span, in frames
    ema_decay: float = 0.0  # validate and save an exponential moving average of the weights (per step); 0: off

    def __post_init__(self) -> None:
        if self.kind not in ("uni", "bi"):
            raise ValueError(f"kind must be 'uni' or 'bi'; received {self.kind!r}")
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}; received {self.cell!r}")
        if self.kind == "bi" and self.output_delay:
            raise ValueError("output_delay is for uni models only")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)}; "
                             f"received {self.normalization!r}")
        if not self.norm_time_s > 0:  # before the corpus is built, not after
            raise ValueError(f"norm_time_s must be > 0 seconds; received {self.norm_time_s}")
        if self.clip_norm < 0 or self.lr <= 0 or self.batch_size < 1 or self.epochs < 1:
            raise ValueError(f"invalid training settings: {self}")
        if not 0 <= self.speed_perturb <= 1:
            raise ValueError(f"speed_perturb is a share of the training strings, 0 to 1; received {self.speed_perturb}")
        if min(self.freq_masks, self.time_masks) < 0 or not 1 <= self.freq_mask_bins <= self.n_mels \
                or self.time_mask_frames < 1:
            raise ValueError(f"SpecAugment needs mask counts >= 0, 1 <= freq_mask_bins <= n_mels ({self.n_mels}) and "
                             f"time_mask_frames >= 1; received freq_masks={self.freq_masks}, freq_mask_bins="
                             f"{self.freq_mask_bins}, time_masks={self.time_masks}, time_mask_frames="
                             f"{self.time_mask_frames}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be 0 (off) or in (0, 1), e.g. 0.999; received {self.ema_decay}")
        if self.select_split not in ("real", "valid") or (self.select_split == "real" and self.real_hours <= 0):
            raise ValueError(f"select_split must be 'valid', or 'real' with real_hours > 0; received "
                             f"{self.select_split!r} with real_hours={self.real_hours}")

    @classmethod
    def from_json(cls, path: str | Path, **overrides) -> TrainConfig:
        """Read a JSON object of field values; unknown keys are an error naming them."""
        data = json.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{path}: unknown training settings {unknown}; known: {sorted(known)}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)


def default_validation_split(cache_dir: Path | None = None, progress: bool = True, split: str = "real") -> Path:
    """A held-out split of the corpus the shipped models were trained on: ``"real"`` (human
    speakers, music and effects held out of training) or ``"valid"`` (synthetic).

    Built by the default task's ``build_data`` (minutes; the real split needs ``scripts/setup.sh
    --train``) and cached on first use; ``cache_dir`` defaults to ``$STREAMSEQ_CACHE``.
    """
    from streamseq.data.corpus import DEFAULT_CACHE
    from streamseq.tasks import get_task

    cfg = TrainConfig()
    return get_task(cfg.task).build_data(cfg, cache_dir or DEFAULT_CACHE, jobs=2, progress=progress) / split
