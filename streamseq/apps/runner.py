"""Run :func:`process_file` over many files, in this process or in a pool of worker processes.

Each worker loads the model once and uses one torch thread (``options.threads`` to change);
files are handed out one at a time, so a long file never holds up the others. A failing
file becomes a failed :class:`FileReport`, never an exception: the other files go on.
Workers report audio seconds done through a queue, for a progress bar within long files.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

import torch

from streamseq.apps.process_files import InputFile, OutputPlan, ProcessOptions, load_task_model, process_file
from streamseq.audio.io import AudioFileError
from streamseq.models.recurrent import FrameModel


@dataclass
class FileReport:
    """Outcome of one input. ``result`` (the JSON dict) is set when ``plan.out_dir`` is None;
    ``totals`` are the task's numbers that add up over files (VAD: ``speech_s``)."""

    index: int
    path: str
    error: str | None = None
    duration: float = 0.0  # audio seconds
    totals: dict[str, float] = field(default_factory=dict)
    result: dict | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def process_one(
    index: int, item: InputFile, model: FrameModel, options: ProcessOptions, plan: OutputPlan,
    on_progress: Callable[[float], None] | None = None,
) -> FileReport:
    """Process and write one file; any failure becomes the report's ``error`` (a reason)."""
    report = FileReport(index, str(item.path))
    try:
        result = process_file(item.path, model, options, keep_frames=plan.frames is not None,
                              on_progress=on_progress)
        if plan.out_dir is not None:
            plan.write(item, result)
        else:
            report.result = result.to_dict()
    except AudioFileError as exc:
        report.error = exc.reason
    except (ValueError, OSError) as exc:
        report.error = str(exc)
    except Exception as exc:  # a bug: still report it and go on with the other files
        report.error = f"internal error: {type(exc).__name__}: {exc}"
    else:
        report.duration, report.totals = result.duration, result.totals
    return report


# --------------------------------------------------------------------------- worker side
_WORKER: dict = {}


def _init_worker(options: ProcessOptions, plan: OutputPlan, progress: mp.Queue) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    torch.set_num_threads(options.threads or 1)
    _WORKER.update(model=load_task_model(options.model), options=options, plan=plan, progress=progress)


def _work(index: int, item: InputFile) -> FileReport:
    w = _WORKER
    return process_one(index, item, w["model"], w["options"], w["plan"], w["progress"].put)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the workers now (outputs are atomic: nothing partial)."""
    workers = list((getattr(pool, "_processes", None) or {}).values())  # no public API before 3.14
    pool.shutdown(wait=False, cancel_futures=True)  # (this clears pool._processes)
    for process in workers:
        process.terminate()


# --------------------------------------------------------------------------- parent side
def run_files(
    items: list[InputFile],
    options: ProcessOptions,
    plan: OutputPlan,
    *,
    jobs: int = 1,
    model: FrameModel | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> Iterator[FileReport]:
    """Yield one :class:`FileReport` per item (``index`` = position in ``items``), as files finish.

    ``jobs == 1`` runs here with ``model`` (loaded if None); more runs a process pool.
    ``on_progress(seconds)`` is called in this process as audio gets processed.
    """
    if jobs <= 1 or len(items) <= 1:
        if options.threads:
            torch.set_num_threads(options.threads)
        model = model if model is not None else load_task_model(options.model)
        for index, item in enumerate(items):
            yield process_one(index, item, model, options, plan, on_progress)
        return
    ctx = mp.get_context("spawn")  # fork after torch has started threads can deadlock
    progress: mp.Queue = ctx.Queue()
    pool = ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker, initargs=(options, plan, progress))
    pending: Iterator[tuple[int, InputFile]] = iter(enumerate(items))
    inflight: dict[Future, tuple[int, InputFile]] = {}
    broken: str | None = None

    def drain() -> None:
        while True:
            try:
                seconds = progress.get_nowait()
            except (queue_mod.Empty, OSError, ValueError):
                return
            if on_progress is not None:
                on_progress(seconds)

    try:
        while True:
            while broken is None and len(inflight) < 2 * jobs and (nxt := next(pending, None)) is not None:
                try:
                    inflight[pool.submit(_work, *nxt)] = nxt
                except BrokenProcessPool as exc:
                    broken = str(exc)
                    pending = iter([nxt, *pending])
            if not inflight:
                break
            done, _ = wait(inflight, timeout=0.1, return_when=FIRST_COMPLETED)
            drain()
            for future in done:
                index, item = inflight.pop(future)
                try:
                    yield future.result()
                except BrokenProcessPool as exc:
                    broken = broken or str(exc)
                    yield FileReport(index, str(item.path), error=f"worker process died: {exc}")
        for index, item in pending:  # only left when the pool broke
            yield FileReport(index, str(item.path), error=f"not processed: {broken}")
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown(wait=True)
    drain()
