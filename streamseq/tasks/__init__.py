"""Tasks: labels, losses, metrics and post-processing on top of the frame models."""

from streamseq.tasks.base import Task


def get_task(name: str) -> Task:
    """The task registered under ``name`` (``"vad"``)."""
    if name == "vad":
        from streamseq.tasks.vad.task import VADTask

        return VADTask()
    raise ValueError(f"unknown task {name!r}; known tasks: vad")


__all__ = ["Task", "get_task"]
