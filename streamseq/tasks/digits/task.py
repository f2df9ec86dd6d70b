"""Spoken-digit recognition as a task: CTC over ``blank`` and the digits 0-9 ("oh" is 0), plus a
``speech`` output that finds where utterances end; the streaming greedy
:class:`~streamseq.tasks.digits.decoder.DigitDecoder` as its decoder.

Dimension legend: B batch, T frames, C outputs per frame (12: blank, 0-9, speech), S the longest
digit string in a batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from streamseq.data.labels import HOP_S
from streamseq.models.config import Activation
from streamseq.tasks.base import Writers, valid_mask
from streamseq.tasks.digits.decoder import DIGIT_LABELS, END_OF_SPEECH, DigitDecoder, decode
from streamseq.tasks.digits.writers import DigitWriters
from streamseq.tasks.vad.metrics import roc_auc
from streamseq.tasks.vad.postprocess import SETTINGS, SegmenterConfig, configure

if TYPE_CHECKING:
    from types import ModuleType

    from streamseq.apps.live import TaskDecoding
    from streamseq.models.recurrent import FrameModel
    from streamseq.training.config import TrainConfig

SPEECH_WEIGHT = 1.0  # of the speech column's cross-entropy beside the CTC loss
ALIGN_WEIGHT = 5.0  # of the cross-entropy of each digit on its word's last frame (alignment guide)


def align(ref: str, hyp: str) -> list[tuple[int | None, int | None]]:
    """A minimum edit alignment: ``(i, j)`` pairs in order, ``(i, None)`` a deletion of ``ref[i]``,
    ``(None, j)`` an insertion of ``hyp[j]``, else a match (equal) or a substitution."""
    n, m = len(ref), len(hyp)
    cost = [list(range(m + 1))] + [[i] + [0] * m for i in range(1, n + 1)]  # (n + 1, m + 1) edit costs
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i][j] = min(cost[i - 1][j] + 1, cost[i][j - 1] + 1, cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]))
    pairs: list[tuple[int | None, int | None]] = []
    i, j = n, m
    while i or j:
        if i and j and cost[i][j] == cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            i, j = i - 1, j - 1
            pairs.append((i, j))
        elif i and cost[i][j] == cost[i - 1][j] + 1:
            i -= 1
            pairs.append((i, None))
        else:
            j -= 1
            pairs.append((None, j))
    return pairs[::-1]


def edit_distance(ref: str, hyp: str) -> int:
    """Levenshtein distance (substitutions, insertions, deletions): the cost of :func:`align`."""
    return sum(1 for i, j in align(ref, hyp) if i is None or j is None or ref[i] != hyp[j])


def digit_scores(refs: Sequence[str], hyps: Sequence[str]) -> dict[str, float]:
    """Pooled over clips: ``digit_error_rate`` (edits / reference digits) and ``string_accuracy`` (share of
    clips whose string is exactly right); NaN where there are no reference digits or no clips."""
    digits = sum(len(r) for r in refs)
    edits = sum(edit_distance(r, h) for r, h in zip(refs, hyps, strict=True))
    return {"digit_error_rate": edits / digits if digits else float("nan"),
            "string_accuracy": (float(np.mean([r == h for r, h in zip(refs, hyps, strict=True)])) if refs
                                else float("nan"))}


class DigitsTask:
    """Digit strings with CTC and end-of-speech. A clip's targets are ``(T, 2)`` per frame: ``speech`` (1 inside
    a spoken digit, from the corpus's per-digit times) and ``token`` (``1 + digit`` on the last frame of each
    digit's word, else 0), so cropping is slicing and the digits keep their order.

    The loss is CTC plus two frame-level terms: the speech column's cross-entropy, and an alignment
    guide -- the cross-entropy of each digit's token on its word's last frame. CTC alone learned
    where digits are but not which for 10 epochs (a 2 x 96 GRU sat on the blank plateau, every
    digit equally likely); the guide, from the engines' word timing, tells it which digit from the
    first steps and asks for the spike no later than the word's end, where a causal model has heard it.
    """

    name = "digits"
    labels = list(DIGIT_LABELS)
    activation: Activation = "log_softmax_sigmoid"
    primary_metric = "digit_accuracy"
    report_metrics: tuple[str, ...] = ("digit_accuracy", "string_accuracy", "speech_roc_auc")
    writers: Writers = DigitWriters()

    # -- data --------------------------------------------------------------------------
    def build_data(self, cfg: TrainConfig, cache: Path, jobs: int, progress: bool) -> Path:
        """The digits corpus (:mod:`streamseq.tasks.digits.data`): ``train/`` and ``valid/``."""
        from streamseq.tasks.digits.data import build_digits_corpus

        if cfg.select_split != "valid":
            raise ValueError(f"the digits corpus has the splits train and valid; received select_split "
                             f"{cfg.select_split!r}: pass --select-split valid")
        return build_digits_corpus(cache, train_hours=cfg.train_hours, valid_hours=cfg.valid_hours,
                                   seed=cfg.data_seed, speed_perturb=cfg.speed_perturb, jobs=jobs, progress=progress)

    def load_targets(self, split_dir: Path, entry: dict, n_frames: int) -> torch.Tensor:
        """``(T, 2)`` from ``meta["digits"]`` and ``meta["digit_times"]`` (``[start, end]`` s each)."""
        digits, times = entry["meta"]["digits"], entry["meta"]["digit_times"]
        if len(digits) != len(times):
            raise ValueError(f"{entry['file']}: {len(digits)} digits but {len(times)} digit times")
        targets = torch.zeros(n_frames, 2, dtype=torch.long)
        for d, (a, b) in zip(digits, times, strict=True):
            first, end = round(a / HOP_S), max(round(b / HOP_S), round(a / HOP_S) + 1)
            targets[first:end, 0] = 1
            last = min(n_frames - 1, end - 1)
            if targets[last, 1]:
                raise ValueError(f"{entry['file']}: two digits end on frame {last}")
            targets[last, 1] = 1 + int(d)
        return targets

    def crop_targets(self, targets: torch.Tensor, start: int, n: int) -> torch.Tensor:
        return targets[start : start + n]

    def collate_targets(self, targets: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """``speech (B, T)`` and ``targets (B, S)`` tokens, both zero-padded (S >= 1), ``target_lengths (B,)``."""
        strings = [t[:, 1][t[:, 1] > 0] for t in targets]
        tokens = torch.zeros(len(targets), max([1, *(len(s) for s in strings)]), dtype=torch.long)
        for b, s in enumerate(strings):
            tokens[b, : len(s)] = s
        return {"targets": tokens, "target_lengths": torch.tensor([len(s) for s in strings]),
                "speech": torch.nn.utils.rnn.pad_sequence([t[:, 0] for t in targets], batch_first=True),
                "word_ends": torch.nn.utils.rnn.pad_sequence([t[:, 1] for t in targets], batch_first=True)}

    # -- training ----------------------------------------------------------------------
    def loss(self, logits: torch.Tensor, lengths: torch.Tensor, batch: dict) -> torch.Tensor:
        """Per valid frame of the batch: CTC (blank 0) of the token logits ``(B, T, C - 1)`` (the clips'
        negative log-likelihoods summed; about log 11 = 2.4 untrained), plus :data:`SPEECH_WEIGHT` x the
        speech column's binary cross-entropy, plus :data:`ALIGN_WEIGHT` x the tokens' cross-entropy on
        the digits' last frames (summed). Impossible alignments (more digits than frames allow) count zero."""
        log_probs = logits[..., :-1].log_softmax(-1)  # (B, T, C - 1)
        nll = torch.nn.functional.ctc_loss(log_probs.transpose(0, 1), batch["targets"], lengths,
                                           batch["target_lengths"], blank=0, reduction="sum", zero_infinity=True)
        mask = valid_mask(lengths, logits.shape[1])
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logits[..., -1], batch["speech"].float(),
                                                                   reduction="none")
        ends = (batch["word_ends"] > 0) & mask  # (B, T)
        guide = -log_probs[ends].gather(1, batch["word_ends"][ends][:, None]).sum()
        frames = lengths.sum().clamp_min(1)
        return (nll + SPEECH_WEIGHT * (bce * mask).sum() + ALIGN_WEIGHT * guide) / frames

    def metrics(self, outputs: list[np.ndarray], targets: list[np.ndarray], metas: list[dict]) -> dict:
        """Greedy decoding (the streaming decoder's digits) against the references: digit error rate
        (edits / reference digits), ``digit_accuracy`` = 1 - that, whole-string accuracy, and the
        ROC-AUC of the speech column on the frames of spoken digits."""
        edits = refs = exact = 0
        for values, rows in zip(outputs, targets, strict=True):
            ref = "".join(str(int(t) - 1) for t in rows[:, 1] if t)
            hyp = "".join(e.digit for e in decode(values) if e.kind == "digit")
            edits, refs, exact = edits + edit_distance(ref, hyp), refs + len(ref), exact + (ref == hyp)
        der = edits / max(refs, 1)
        speech_auc = roc_auc(np.concatenate([o[:, -1] for o in outputs]),
                             np.concatenate([t[:, 0] for t in targets]).astype(np.uint8))
        return {"digit_accuracy": 1.0 - der, "digit_error_rate": der, "string_accuracy": exact / max(len(outputs), 1),
                "speech_roc_auc": speech_auc}

    # -- inference ---------------------------------------------------------------------
    def default_task_config(self) -> dict:
        """The end-of-speech segmenter settings (:data:`~streamseq.tasks.digits.decoder.END_OF_SPEECH`)."""
        return {name: getattr(END_OF_SPEECH, name) for name in SETTINGS}

    def segmenter_config(self, model: FrameModel, overrides: Mapping[str, Any] | None = None) -> SegmenterConfig:
        """End-of-speech settings: the defaults, then ``model.task_config``, then ``overrides``; on the model's grid."""
        return configure(END_OF_SPEECH, model.task_config, overrides, frame_shift_s=model.feature_config.frame_shift_s,
                         what="digits end-of-speech")

    def scores(self, model: FrameModel, values: np.ndarray) -> np.ndarray:
        """The speech probability ``(n,)`` of each frame (the last output)."""
        return values[:, -1]

    def latency_report(self) -> ModuleType:
        """The digits latency report (:mod:`streamseq.tasks.digits.latency`): per-digit emission delays."""
        from streamseq.tasks.digits import latency  # it imports this module

        return latency

    def live_decoding(self, uni: FrameModel, bi: FrameModel | None, segmenter: SegmenterConfig) -> TaskDecoding:
        """The uni partial transcript and each utterance's uni and bi transcripts (:mod:`.live`)."""
        from streamseq.tasks.digits.live import LiveDecoding

        return LiveDecoding(uni, bi, segmenter)

    def decoder(self, model: FrameModel, overrides: Mapping[str, Any] | None = None) -> DigitDecoder:
        return DigitDecoder(self.segmenter_config(model, overrides), model.labels)


if TYPE_CHECKING:  # mypy checks that DigitsTask is a Task
    from streamseq.tasks.base import SegmentingTask, Task

    _task: Task = DigitsTask()
    _segmenting: SegmentingTask = DigitsTask()
