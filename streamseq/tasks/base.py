"""What a task gives the rest of streamseq: its targets, loss, metrics, decoder and writers.

The dataset, trainer, checkpoint and apps know nothing task-specific; they call a ``Task``.
A new sequence task (e.g. spoken digits with CTC) is a folder ``tasks/<name>/`` holding a
``Task`` implementation, plus one line in :data:`streamseq.tasks.TASKS`.

Dimension legend: B batch, T frames, C outputs per frame (``len(task.labels)``), n frames of
one chunk. *Targets* are whatever one clip's supervision is (VAD: one value per frame; a CTC
task: a short token sequence); only the task looks inside them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import torch

from streamseq.models.config import Activation

if TYPE_CHECKING:  # type names only: tasks sit below training and beside the apps
    from types import ModuleType

    from streamseq.apps.live import TaskDecoding
    from streamseq.models.recurrent import FrameModel
    from streamseq.tasks.vad.postprocess import SegmenterConfig
    from streamseq.training.config import TrainConfig


class Decoder(Protocol):
    """A task's incremental post-processor for one stream: activated outputs in, events out.

    Fed chunk by chunk (streaming) or all at once (offline), it decides the same events.
    """

    settings: dict  # JSON-able settings that determine its events (recorded beside outputs)

    def push(self, values: np.ndarray) -> list[Any]:
        """Consume activated outputs ``(n, C)`` of the next frames; return the events they decide."""
        ...

    def flush(self) -> list[Any]:
        """End of stream: the remaining events; the decoder is then ready for a new stream."""
        ...


class Writers(Protocol):
    """How ``streamseq process`` reports one file: the result dictionary and its text formats."""

    extensions: Mapping[str, str]  # format name -> file extension
    multi_file: tuple[str, ...]  # formats that several files can share on one output (stdout)

    def result(self, events: list[Any]) -> dict:
        """The task's fields of one file's JSON result, from all of its decoder events."""
        ...

    def render(self, result: dict, fmt: str, *, first: bool = True, many: bool = False) -> str:
        """Text of one file's result (``file``, ``duration``, ``sample_rate``, ``model`` + the task's fields).

        ``first``: the first file on a shared output (headers); ``many``: several files share it.
        """
        ...

    def frames(self, values: np.ndarray, labels: list[str]) -> tuple[np.ndarray, list[str]]:
        """What ``--frames`` writes: per-frame values ``(T,)`` or ``(T, K)`` and their column names."""
        ...

    def totals(self, events: list[Any]) -> dict[str, float]:
        """Numbers of one file that add up over files (VAD: seconds of speech), from its decoder events."""
        ...

    def describe(self, totals: dict[str, float]) -> str:
        """Summed totals as words for the end-of-run line (VAD: ``0.123 h speech``)."""
        ...


class Task(Protocol):
    name: str
    labels: list[str]  # one name per output column
    activation: Activation
    primary_metric: str  # validation metric that picks the best checkpoint (higher is better)
    report_metrics: tuple[str, ...]  # validation metrics the trainer prints after each epoch
    writers: Writers

    # -- data --------------------------------------------------------------------------
    def build_data(self, cfg: TrainConfig, cache: Path, jobs: int, progress: bool) -> Path:
        """Build (or reuse) the training data; the folder holding ``train/`` and the other splits."""
        ...

    def load_targets(self, split_dir: Path, entry: dict, n_frames: int) -> torch.Tensor:
        """One clip's targets from its manifest ``entry``; ``n_frames``: its feature frames."""
        ...

    def crop_targets(self, targets: torch.Tensor, start: int, n: int) -> torch.Tensor:
        """The targets of frames ``[start, start + n)`` of a clip (training crops)."""
        ...

    def collate_targets(self, targets: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Batch entries for a list of targets, at least padded ``targets`` and ``target_lengths (B,)``."""
        ...

    # -- training ----------------------------------------------------------------------
    def loss(self, logits: torch.Tensor, lengths: torch.Tensor, batch: dict) -> torch.Tensor:
        """Mean loss of logits ``(B, T, C)`` with valid frames ``lengths (B,)`` against ``batch``'s targets."""
        ...

    def metrics(self, outputs: list[np.ndarray], targets: list[np.ndarray], metas: list[dict]) -> dict:
        """Validation metrics from per-clip activated outputs ``(T, C)``, targets and manifest metas."""
        ...

    # -- inference ---------------------------------------------------------------------
    def default_task_config(self) -> dict:
        """Inference settings a new checkpoint stores (``model.task_config``); missing keys mean these."""
        ...

    def decoder(self, model: FrameModel, overrides: Mapping[str, Any] | None = None) -> Decoder:
        """A new post-processor for one stream of ``model``: its ``task_config`` with ``overrides`` on top."""
        ...


@runtime_checkable
class SegmentingTask(Protocol):
    """A capability: the task's outputs give a per-frame score that the VAD ``Segmenter`` turns into
    segments (VAD: speech probability). Apps about segment boundaries (the latency report, the
    live view) need it."""

    def segmenter_config(self, model: FrameModel, overrides: Mapping[str, Any] | None = None) -> SegmenterConfig:
        """``model``'s segmenter settings (its ``task_config``, ``overrides`` on top) on its frame grid."""
        ...

    def scores(self, model: FrameModel, values: np.ndarray) -> np.ndarray:
        """Per-frame scores ``(n,)`` in [0, 1] from ``model``'s activated outputs ``(n, C)``."""
        ...


@runtime_checkable
class ReportingTask(Protocol):
    """A capability: the task has its own latency report, used by ``streamseq latency`` instead of the
    segment report (see :func:`streamseq.apps.latency.task_report` for what the module holds)."""

    def latency_report(self) -> ModuleType:
        """The module of the task's latency report (imported when asked for)."""
        ...


@runtime_checkable
class LiveDecodingTask(Protocol):
    """A capability: the task decodes more than segments live (digits: partial and final transcripts);
    ``streamseq mic`` and ``streamseq serve`` run it beside the segments."""

    def live_decoding(self, uni: FrameModel, bi: FrameModel | None, segmenter: SegmenterConfig) -> TaskDecoding:
        """A new live decoding (:class:`~streamseq.apps.live.TaskDecoding`) for one stream of ``uni``."""
        ...


def valid_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``(B, T)`` boolean mask of the frames inside each sequence."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]
