"""Applications on top of the streaming core. This package exports the offline processing of
sound files (``streamseq process``); other applications are imported by their module names.

    >>> from streamseq.apps import ProcessOptions, load_task_model, process_file
    >>> model = load_task_model("vad-uni")
    >>> result = process_file("talk.flac", model, ProcessOptions(model="vad-uni"))
    >>> [(s["start"], s["end"]) for s in result.to_dict()["segments"]]   # VAD: seconds
"""

from streamseq.apps.process_files import (
    FileResult,
    InputFile,
    OutputPlan,
    ProcessOptions,
    discover,
    load_task_model,
    make_processor,
    process_file,
    shard,
)
from streamseq.apps.runner import FileReport, run_files
from streamseq.apps.windowed import WindowedProcessor

__all__ = [
    "FileReport", "FileResult", "InputFile", "OutputPlan", "ProcessOptions", "WindowedProcessor",
    "discover", "load_task_model", "make_processor", "process_file", "run_files", "shard",
]
