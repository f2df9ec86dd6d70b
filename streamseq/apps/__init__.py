"""Applications on top of the streaming core. This package exports the offline processing of
sound files (``streamseq process``); other applications are imported by their module names.

    >>> from streamseq.apps import ProcessOptions, load_vad_model, process_file
    >>> model = load_vad_model("vad-uni")
    >>> result = process_file("talk.flac", model, ProcessOptions(model="vad-uni"))
    >>> [(s.start, s.end) for s in result.segments]          # seconds
"""

from streamseq.apps.process_files import (
    FileResult,
    InputFile,
    OutputPlan,
    ProcessOptions,
    discover,
    load_vad_model,
    make_processor,
    process_file,
    shard,
)
from streamseq.apps.runner import FileReport, run_files
from streamseq.apps.windowed import WindowedProcessor
from streamseq.apps.writers import render

__all__ = [
    "FileReport", "FileResult", "InputFile", "OutputPlan", "ProcessOptions", "WindowedProcessor",
    "discover", "load_vad_model", "make_processor", "process_file", "render", "run_files", "shard",
]
