"""A model's task over sound files (VAD: speech segments): find the inputs, process each in blocks,
write the results.

Data flow for one file (memory is flat whatever its length)::

    iter_blocks(path, block_s)          (n, channels) float32 blocks, 10 s by default
      -> Session (uni model)            the streaming path itself: file path == streaming path
         or WindowedProcessor (bi)      windows of at most bi_window_s, see apps.windowed
      -> task decoder .push(values)     the task's one incremental post-processor (VAD: the
                                        Segmenter), fed as frames come
      -> FileResult                     the task's result fields (+ per-frame values if asked)

A uni model keeps only the GRU state and the frontend's leftover samples between blocks. A bi
model keeps the log-mel frames of one window (16 KB per second at 40 bins: ~1 MB for 60 s).

Inputs are files, folders (searched recursively for audio extensions, hidden names skipped)
and glob patterns. Each input gets a path relative to the folder (or glob base) it was found
under; with an output folder its results go to that relative path, extension per format.

Every output file gets a record beside it (``.<name>.settings.json``: :func:`run_settings` and
the output format), written after the output itself and removed before it is replaced. An
output counts as done only when its record matches the current run, so a run interrupted at
any point, or run with other settings on some files only, never passes for finished.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from streamseq.apps.windowed import WindowedProcessor
from streamseq.apps.writers import FRAME_EXTENSIONS, write_frames, write_text
from streamseq.audio.io import AUDIO_EXTENSIONS, check_channel, iter_blocks, read_info
from streamseq.models.checkpoint import load_model
from streamseq.models.recurrent import FrameModel
from streamseq.streaming import FrameOutputs, Session
from streamseq.tasks import Writers, model_task

MANIFEST = ".streamseq-process.json"  # settings the output folder is being filled with (see check_outputs)


# ---------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class InputFile:
    """An input ``path`` and ``rel``, where its outputs go relative to the output folder."""

    path: Path
    rel: Path


def _walk(root: Path) -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(folder, f) for f in files
                  if not f.startswith(".") and Path(f).suffix.lower() in AUDIO_EXTENSIONS]
    return found


def _glob_base(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard: ``data/**/*.wav`` -> ``data``."""
    parts = Path(pattern).parts
    fixed = parts[: next(i for i, p in enumerate(parts) if glob.has_magic(p))]
    return Path(*fixed) if fixed else Path(".")


def discover(inputs: Iterable[str | os.PathLike]) -> tuple[list[InputFile], list[tuple[str, str]]]:
    """Expand files, folders and globs into a sorted, de-duplicated list of inputs.

    Files named explicitly are kept whatever their extension (a non-audio one fails later with
    a reason). Returns ``(files, problems)``; a problem is ``(input, reason)``, e.g. a path
    that does not exist or a pattern that matches nothing.
    """
    found: list[InputFile] = []
    problems: list[tuple[str, str]] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            items = [InputFile(f, f.relative_to(path)) for f in _walk(path)]
            if not items:
                problems.append((str(raw), f"no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))}) in this folder"))
        elif path.exists() or not glob.has_magic(str(raw)):
            items = [InputFile(path, Path(path.name))]
        else:
            base = _glob_base(str(raw))
            items = []
            for match in map(Path, glob.glob(str(raw), recursive=True)):
                items += ([InputFile(f, f.relative_to(base)) for f in _walk(match)] if match.is_dir()
                          else [InputFile(match, match.relative_to(base))])
            if not items:
                problems.append((str(raw), "pattern matches no file"))
        found += items
    unique: dict[Path, InputFile] = {}
    for item in sorted(found, key=lambda f: f.path.as_posix()):
        unique.setdefault(item.path.resolve(), item)
    return list(unique.values()), problems


def shard(files: list[InputFile], index: int, count: int) -> list[InputFile]:
    """Shard ``index`` of ``count``: file k of the sorted list goes to shard ``k % count``."""
    if not 0 <= index < count:
        raise ValueError(f"expected shard 0 <= I < N; received {index}/{count}")
    return files[index::count]


# ---------------------------------------------------------------------------- one file
@dataclass(frozen=True)
class ProcessOptions:
    """How files are processed. Times in seconds; ``channel`` is 0-based (None: downmix).

    ``decoder``: settings of the task's post-processor over the model's ``task_config`` (VAD:
    :class:`~streamseq.tasks.vad.postprocess.SegmenterConfig` fields, e.g. ``{"onset": 0.6}``).
    """

    model: str = "vad-uni"
    decoder: dict = field(default_factory=dict)
    channel: int | None = None
    block_s: float = 10.0
    bi_window_s: float = 60.0
    bi_context_s: float = 5.0
    threads: int | None = None  # torch threads per process (None: leave as is)


@dataclass
class FileResult:
    """Result of one file: the task's result fields (VAD: ``segments``), its ``totals`` (VAD:
    ``speech_s``) and, if asked, what the task writes per frame (VAD: speech probability ``(T,)``)."""

    file: str
    duration: float
    sample_rate: int
    model: str
    fields: dict  # the task's part of the JSON result (task.writers.result)
    totals: dict[str, float]
    frame_shift_s: float  # of the model's FeatureConfig
    frames: tuple[np.ndarray, list[str]] | None = None  # per-frame values and column names (task.writers.frames)

    def to_dict(self) -> dict:
        """The JSON output format."""
        return {"file": self.file, "duration": round(self.duration, 3), "sample_rate": self.sample_rate,
                "model": self.model, **self.fields}


def load_task_model(name_or_path: str) -> FrameModel:
    """``load_model`` plus a check that this streamseq knows the model's task (ValueError naming both)."""
    model = load_model(name_or_path)
    model_task(model, f"model {name_or_path}")
    return model


def make_processor(model: FrameModel, options: ProcessOptions = ProcessOptions()) -> Session | WindowedProcessor:
    """A streaming :class:`Session` for a uni model, a :class:`WindowedProcessor` otherwise."""
    if getattr(model, "streaming", False):
        return Session(model)
    return WindowedProcessor(model, options.bi_window_s, options.bi_context_s)


def process_file(
    path: str | os.PathLike,
    model: FrameModel,
    options: ProcessOptions = ProcessOptions(),
    *,
    keep_frames: bool = False,
    on_progress: Callable[[float], None] | None = None,
) -> FileResult:
    """Run the model and its task's decoder over one file in blocks of ``options.block_s``; see the
    module docstring.

    ``on_progress(seconds)`` is called after each block with the audio seconds it held.

    Raises:
        AudioFileError: unreadable, empty, truncated or non-audio file, or a bad channel.
        ValueError: samples the frontend rejects (e.g. NaN in a float file).
    """
    info = read_info(path)
    check_channel(info, options.channel)
    processor = make_processor(model, options)
    task = model_task(model, f"model {options.model}")
    decoder = task.decoder(model, options.decoder)
    events: list = []
    values: list[np.ndarray] = []
    samples = 0

    def consume(out: FrameOutputs) -> None:
        if keep_frames:
            values.append(out.values.copy())  # (n, C)
        events.extend(decoder.push(out.values))

    for block in iter_blocks(path, options.block_s, options.channel, info=info):  # (n, channels)
        consume(processor.accept(block, sample_rate=info.sample_rate))
        samples += block.shape[0]
        if on_progress is not None:
            on_progress(block.shape[0] / info.sample_rate)
    consume(processor.finish())
    events.extend(decoder.flush())
    return FileResult(
        str(path), samples / info.sample_rate, info.sample_rate, options.model, task.writers.result(events),
        task.writers.totals(events), model.feature_config.frame_shift_s,
        task.writers.frames(np.concatenate(values), model.labels) if keep_frames else None,
    )


# ---------------------------------------------------------------------------- outputs
@dataclass(frozen=True)
class OutputPlan:
    """Where results go: ``out_dir`` None means the caller prints them (stdout).

    ``settings`` (:func:`run_settings`) goes into the record written beside every output.
    """

    writers: Writers  # the model's task's (task.writers)
    out_dir: Path | None = None
    fmt: str = "json"
    frames: str | None = None  # "npy" | "csv" | None
    settings: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.fmt not in self.writers.extensions:
            raise ValueError(f"unknown format {self.fmt!r}; this model's task writes "
                             f"{', '.join(self.writers.extensions)}")

    def paths(self, item: InputFile) -> list[Path]:
        """Output files of ``item``: the per-frame values (if asked), then the result."""
        assert self.out_dir is not None
        base = self.out_dir / item.rel
        frames = [base.with_suffix(FRAME_EXTENSIONS[self.frames])] if self.frames else []
        return frames + [base.with_suffix(self.writers.extensions[self.fmt])]

    def records(self, item: InputFile) -> list[tuple[Path, dict]]:
        """Each output of ``item`` with the record it carries once this plan has written it."""
        kinds = ([f"frames {self.frames}"] if self.frames else []) + [self.fmt]
        return [(path, self.settings | {"output": kind}) for path, kind in zip(self.paths(item), kinds, strict=True)]

    def write(self, item: InputFile, result: FileResult) -> None:
        """Write the outputs of ``item``, each followed by its record (:func:`record_path`)."""
        *frames, (main, record) = self.records(item)
        if frames and result.frames is not None:
            path, frames_record = frames[0]
            (values, columns), fmt = result.frames, self.frames or "npy"
            _write_recorded(path, frames_record, lambda: write_frames(path, values, fmt, result.frame_shift_s, columns))
        _write_recorded(main, record, lambda: write_text(main, self.writers.render(result.to_dict(), self.fmt)))


def record_path(output: Path) -> Path:
    """The record beside ``output``: the settings it was made with (hidden, like the temporary files)."""
    return output.with_name(f".{output.name}.settings.json")


def read_record(output: Path) -> dict | None:
    """The record of ``output``, or None when it has none (never finished, or written before records)."""
    try:
        return json.loads(record_path(output).read_text())
    except (OSError, ValueError):
        return None


def _write_recorded(output: Path, record: dict, write: Callable[[], None]) -> None:
    """Call ``write()`` (which writes ``output`` atomically), then record it. From the first step
    until the last, ``output`` has no record: interrupted anywhere, it counts as not done."""
    record_path(output).unlink(missing_ok=True)
    write()
    write_text(record_path(output), json.dumps(record) + "\n")


def model_fingerprint(model: FrameModel) -> str:
    """SHA-256 (16 hex digits) of the model's configs and weights: changes when it is retrained."""
    digest = hashlib.sha256(json.dumps([model.config.to_dict(), model.feature_config.to_dict()]).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def run_settings(model: FrameModel, options: ProcessOptions) -> dict:
    """What determines the results (recorded beside each output, and in the folder's manifest)."""
    decoder = model_task(model, f"model {options.model}").decoder(model, options.decoder)
    settings: dict[str, object] = {"model_sha256": model_fingerprint(model), "channel": options.channel,
                                   **decoder.settings}
    if not getattr(model, "streaming", False):
        settings |= {"bi_window_s": options.bi_window_s, "bi_context_s": options.bi_context_s}
    return json.loads(json.dumps(settings))  # as it reads back from the manifest


@dataclass
class OutputCheck:
    """``todo``: to process; ``skipped``: every output recorded as made with these settings;
    ``conflicts``: outputs of other settings this run would overwrite; ``changed``: manifest
    keys that differ from this run's settings."""

    todo: list[InputFile] = field(default_factory=list)
    skipped: list[InputFile] = field(default_factory=list)
    conflicts: list[Path] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)


def check_outputs(items: list[InputFile], plan: OutputPlan, force: bool) -> OutputCheck:
    """Decide what to do with existing outputs before anything is written.

    An output is *current* when its record matches this run (``plan.records``); any other
    existing output is *stale* (made with other settings or format, or never finished). An item
    whose outputs are all current is skipped. Stale outputs are redone when the folder's
    manifest has this run's settings (the folder was claimed for them, e.g. by an interrupted
    ``--force`` run); otherwise they are conflicts, and a manifest with other settings is
    ``changed``: callers should refuse to write without ``force``, so one folder is filled
    with one configuration. With ``force`` everything is processed again.
    """
    if plan.out_dir is None:
        raise ValueError("check_outputs needs an output folder (plan.out_dir)")
    check = OutputCheck()
    try:
        claimed = json.loads((plan.out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        claimed = None
    if claimed is not None and claimed != plan.settings:
        check.changed = sorted(k for k in plan.settings.keys() | claimed.keys()
                               if plan.settings.get(k) != claimed.get(k))
    for item in items:
        outputs = plan.records(item)
        current = [path for path, record in outputs if path.exists() and read_record(path) == record]
        stale = [path for path, _ in outputs if path.exists() and path not in current]
        if force:
            check.todo.append(item)
        elif len(current) == len(outputs):
            check.skipped.append(item)
        elif stale and claimed != plan.settings:
            check.conflicts += stale
        else:
            check.todo.append(item)  # outputs missing, or stale in a folder claimed for these settings
    return check


def write_manifest(out_dir: Path, settings: dict) -> None:
    """Claim ``out_dir`` for ``settings`` (before processing; what each output holds is in its record)."""
    write_text(out_dir / MANIFEST, json.dumps(settings, indent=1) + "\n")


def output_collisions(items: list[InputFile], plan: OutputPlan) -> list[tuple[Path, list[Path]]]:
    """Output paths that two or more inputs would share (e.g. ``a.wav`` and ``a.flac``)."""
    by_out: dict[Path, list[Path]] = {}
    for item in items:
        by_out.setdefault(plan.paths(item)[-1], []).append(item.path)
    return [(out, ins) for out, ins in by_out.items() if len(ins) > 1]
