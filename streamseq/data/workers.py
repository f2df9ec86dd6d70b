"""The process pool that corpus builds run their items in, and an ordered map over it.

Each worker uses one torch thread (bitwise-reproducible DSP); pools are started with ``spawn``
(no fork after torch/OpenMP threads have started). ``jobs == 1`` runs everything inline.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

import torch
from tqdm import tqdm

__all__ = ["worker_pool", "ordered_map"]


def _one_thread(initializer: Callable[..., None] | None, *initargs: Any) -> None:
    torch.set_num_threads(1)
    if initializer is not None:
        initializer(*initargs)


@contextlib.contextmanager
def worker_pool(jobs: int, initializer: Callable[..., None] | None = None,
                initargs: tuple = ()) -> Iterator[Executor | None]:
    """One torch thread here and, for ``jobs > 1``, a spawn pool of ``jobs`` one-thread workers.

    ``initializer(*initargs)`` runs in every worker and, for inline runs, once here. Yields the
    pool, or None when ``jobs`` is 1; the caller's thread count is restored on exit.
    """
    threads = torch.get_num_threads()
    try:
        _one_thread(initializer, *initargs)
        if jobs <= 1:
            yield None
        else:
            with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread,
                                     initargs=(initializer, *initargs)) as ex:
                yield ex
    finally:
        torch.set_num_threads(threads)


def ordered_map(ex: Executor | None, fn: Callable, tasks: list, desc: str, progress: bool) -> list:
    """``[fn(t) for t in tasks]`` in ``ex`` (a process pool) or inline when ``ex`` is None, with a bar."""
    if ex is None:
        it: Any = map(fn, tasks)
    else:
        it = ex.map(fn, tasks, chunksize=max(1, min(8, len(tasks) // 16)))
    return list(tqdm(it, total=len(tasks), desc=desc, disable=not progress, leave=False))
