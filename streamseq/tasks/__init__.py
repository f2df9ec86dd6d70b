"""Tasks: targets, losses, metrics, decoders and writers on top of the frame models.

:data:`TASKS` is the registry, one line per task: ``name -> "module:Class"``, imported on first
use. A task is added by its folder ``tasks/<name>/`` and one line here (optional capabilities, such as its
own latency report or live decoding, are methods of its class: see :mod:`streamseq.tasks.base`) (tests add a temporary
one with ``monkeypatch.setitem(TASKS, name, "module:Class")``).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from streamseq.tasks.base import Decoder, LiveDecodingTask, ReportingTask, SegmentingTask, Task, Writers

if TYPE_CHECKING:
    from streamseq.models.recurrent import FrameModel

TASKS: dict[str, str] = {
    "vad": "streamseq.tasks.vad.task:VADTask",
    "digits": "streamseq.tasks.digits.task:DigitsTask",
}


def get_task(name: str) -> Task:
    """A new instance of the task registered under ``name``."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    module, cls = TASKS[name].split(":")
    return getattr(import_module(module), cls)()


def model_task(model: FrameModel, what: str = "the model") -> Task:
    """The task ``model`` was trained for; ValueError naming ``what`` (e.g. "model vad-uni") and its
    task when this streamseq does not know the task."""
    if model.task not in TASKS:
        raise ValueError(f"{what} was trained for task {model.task!r}, which this streamseq does not know "
                         f"(known tasks: {', '.join(sorted(TASKS))})")
    return get_task(model.task)


def segmenting_task(model: FrameModel, what: str, needs: str) -> SegmentingTask:
    """``model``'s task if it segments the stream (:class:`SegmentingTask`); else ValueError saying
    which task the model has and that ``needs`` (e.g. "the latency report") needs one that does."""
    task = model_task(model, what)
    if not isinstance(task, SegmentingTask):
        segmenting = [name for name in sorted(TASKS) if isinstance(get_task(name), SegmentingTask)]
        raise ValueError(f"{what} was trained for task {model.task!r}, whose outputs are not segments; "
                         f"{needs} needs a model of a segmenting task ({', '.join(segmenting)})")
    return task


__all__ = ["TASKS", "Decoder", "LiveDecodingTask", "ReportingTask", "SegmentingTask", "Task", "Writers", "get_task",
           "model_task", "segmenting_task"]
