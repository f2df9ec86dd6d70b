"""Spoken-digit recognition as a task: CTC over ``blank`` and the digits 0-9 ("oh" is 0), the
streaming greedy :class:`~streamseq.tasks.digits.decoder.DigitDecoder` as its decoder.

Dimension legend: B batch, T frames, C outputs per frame (11), S the longest target in a batch,
K digits of one clip.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from streamseq.data.labels import HOP_S
from streamseq.models.config import Activation
from streamseq.tasks.base import Writers
from streamseq.tasks.digits.decoder import DIGIT_LABELS, DecoderConfig, DigitDecoder, decode
from streamseq.tasks.digits.writers import DigitWriters

if TYPE_CHECKING:
    from streamseq.models.gru import FrameModel
    from streamseq.training.config import TrainConfig

_SETTINGS = tuple(f.name for f in fields(DecoderConfig) if f.name != "frame_shift_s")  # what task_config holds


def edit_distance(ref: str, hyp: str) -> int:
    """Levenshtein distance (substitutions, insertions, deletions) between two strings."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        diagonal, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (r != h))
    return row[-1]


class DigitsTask:
    """Digit strings with CTC. A clip's targets are rows ``(token, frame)`` ``(K, 2)``: token ``1 + digit``
    and the frame nearest the middle of its word (from the corpus's per-digit times), used to crop."""

    name = "digits"
    labels = list(DIGIT_LABELS)
    activation: Activation = "log_softmax"
    primary_metric = "digit_accuracy"
    report_metrics: tuple[str, ...] = ("digit_accuracy", "string_accuracy")
    writers: Writers = DigitWriters()

    # -- data --------------------------------------------------------------------------
    def build_data(self, cfg: TrainConfig, cache: Path, jobs: int, progress: bool) -> Path:
        """The digits corpus (:mod:`streamseq.tasks.digits.data`): ``train/`` and ``valid/``."""
        from streamseq.tasks.digits.data import build_digits_corpus

        if cfg.select_split != "valid":
            raise ValueError(f"the digits corpus has the splits train and valid; received select_split "
                             f"{cfg.select_split!r}: pass --select-split valid")
        return build_digits_corpus(cache, train_hours=cfg.train_hours, valid_hours=cfg.valid_hours,
                                   seed=cfg.data_seed, jobs=jobs, progress=progress)

    def load_targets(self, split_dir: Path, entry: dict, n_frames: int) -> torch.Tensor:
        """``(K, 2)`` rows from ``meta["digits"]`` and ``meta["digit_times"]`` (``[start, end]`` s each)."""
        digits, times = entry["meta"]["digits"], entry["meta"]["digit_times"]
        if len(digits) != len(times):
            raise ValueError(f"{entry['file']}: {len(digits)} digits but {len(times)} digit times")
        rows = [[1 + int(d), min(n_frames - 1, round((a + b) / 2 / HOP_S))] for d, (a, b) in zip(digits, times,
                                                                                              strict=True)]
        return torch.tensor(rows, dtype=torch.long).reshape(-1, 2)

    def crop_targets(self, targets: torch.Tensor, start: int, n: int) -> torch.Tensor:
        """The digits whose middle frame lies in ``[start, start + n)``, frames made relative to ``start``."""
        inside = (targets[:, 1] >= start) & (targets[:, 1] < start + n)
        return targets[inside] - torch.tensor([0, start])

    def collate_targets(self, targets: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """``targets (B, S)`` tokens zero-padded (S >= 1) and ``target_lengths (B,)``."""
        tokens = torch.zeros(len(targets), max([1, *(len(t) for t in targets)]), dtype=torch.long)
        for b, t in enumerate(targets):
            tokens[b, : len(t)] = t[:, 0]
        return {"targets": tokens, "target_lengths": torch.tensor([len(t) for t in targets])}

    # -- training ----------------------------------------------------------------------
    def loss(self, logits: torch.Tensor, lengths: torch.Tensor, batch: dict) -> torch.Tensor:
        """CTC (blank 0) of logits ``(B, T, C)`` per valid frame: the clips' negative log-likelihoods summed
        over the batch, over its valid frames (about log 11 = 2.4 untrained, like a per-frame
        cross-entropy). Impossible alignments (more digits than frames allow) count zero."""
        log_probs = logits.log_softmax(-1).transpose(0, 1)  # (T, B, C)
        nll = torch.nn.functional.ctc_loss(log_probs, batch["targets"], lengths, batch["target_lengths"], blank=0,
                                           reduction="sum", zero_infinity=True)
        return nll / lengths.sum().clamp_min(1)

    def metrics(self, outputs: list[np.ndarray], targets: list[np.ndarray], metas: list[dict]) -> dict:
        """Greedy decoding (the streaming decoder's digits) against the references: digit error rate
        (edits / reference digits), ``digit_accuracy`` = 1 - that, and whole-string accuracy."""
        edits = refs = exact = 0
        for values, rows in zip(outputs, targets, strict=True):
            ref = "".join(str(int(t) - 1) for t in rows[:, 0])
            hyp = "".join(e.digit for e in decode(values) if e.kind == "digit")
            edits, refs, exact = edits + edit_distance(ref, hyp), refs + len(ref), exact + (ref == hyp)
        der = edits / max(refs, 1)
        return {"digit_accuracy": 1.0 - der, "digit_error_rate": der, "string_accuracy": exact / max(len(outputs), 1)}

    # -- inference ---------------------------------------------------------------------
    def default_task_config(self) -> dict:
        """The :class:`DecoderConfig` defaults, without the frame shift (the model's features give it)."""
        return {name: getattr(DecoderConfig(), name) for name in _SETTINGS}

    def decoder_config(self, model: FrameModel, overrides: Mapping[str, Any] | None = None) -> DecoderConfig:
        """The defaults, then ``model.task_config``, then ``overrides``; on the model's frame grid."""
        settings = {**self.default_task_config(), **model.task_config, **(overrides or {})}
        if unknown := sorted(set(settings) - set(_SETTINGS)):
            raise ValueError(f"unknown digits decoder settings {unknown} (in the model's task_config or the "
                             f"overrides); known: {', '.join(_SETTINGS)}")
        return DecoderConfig(**settings, frame_shift_s=model.feature_config.frame_shift_s)

    def decoder(self, model: FrameModel, overrides: Mapping[str, Any] | None = None) -> DigitDecoder:
        return DigitDecoder(self.decoder_config(model, overrides), model.labels)


if TYPE_CHECKING:  # mypy checks that DigitsTask is a Task
    from streamseq.tasks.base import Task

    _task: Task = DigitsTask()
