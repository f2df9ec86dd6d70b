"""Atomic file writing, per-frame outputs, and checks that outputs can be written.

The formats of a file's result belong to its model's task (``task.writers``; VAD's are in
:mod:`streamseq.tasks.vad.writers`); this module writes them, and the per-frame values.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np

__all__ = ["FRAME_EXTENSIONS", "atomic_write", "check_output_dir", "check_output_file", "write_frames", "write_text"]

FRAME_EXTENSIONS = {"npy": ".frames.npy", "csv": ".frames.csv"}


def _unwritable(folder: Path) -> str | None:
    """Why files cannot be created in ``folder`` or the folders it would be created in; None if they can.

    Nothing is left behind: the nearest existing folder on the way is probed with a temporary file."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path.cwd())
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as exc:
        return f"cannot write in {existing} ({exc.strerror or exc})"
    return None


def check_output_dir(path: Path, what: str = "output folder") -> None:
    """Raise ValueError, naming ``what`` and ``path``, unless outputs can be written under folder ``path``
    (created if missing). Meant for the start of a run, before any work that the error would waste."""
    if problem := _unwritable(path):
        raise ValueError(f"{what} {path}: {problem}; give a folder you can write to")


def check_output_file(path: Path, what: str = "output file") -> None:
    """Raise ValueError, naming ``what`` and ``path``, unless file ``path`` can be created or replaced
    in its existing folder. Meant for the start of a run, like :func:`check_output_dir`."""
    problem = "it is a folder" if path.is_dir() else _unwritable(path.parent)
    if problem is None and not path.parent.is_dir():
        problem = f"folder {path.parent} does not exist"
    if problem:
        raise ValueError(f"{what} {path}: {problem}; give a file path you can write to")


def atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Create ``path`` by writing a hidden temporary file next to it and renaming it.

    A reader (or a rerun) never sees a partial file: ``path`` either does not exist, is the
    previous version, or is complete. The temporary file is removed if ``write`` fails.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """Atomically write UTF-8 ``text`` to ``path``."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def write_frames(path: Path, values: np.ndarray, fmt: str, frame_shift_s: float, columns: list[str]) -> None:
    """Atomically write per-frame values ``(T,)`` or ``(T, K)``: ``npy`` float32 or ``csv``.

    CSV rows are ``time,<columns...>`` with ``time`` the start of the frame in seconds
    (``task.writers.frames`` gives the values and column names: VAD ``(T,)`` and ``prob``).
    """
    values = np.asarray(values, dtype=np.float32)
    if fmt == "npy":
        atomic_write(path, lambda f: np.save(f, values))
    elif fmt == "csv":
        table = values.reshape(values.shape[0], -1)  # (T, K)
        if table.shape[1] != len(columns):
            raise ValueError(f"expected {table.shape[1]} column names for values of shape {values.shape}; "
                             f"received {columns}")
        rows = "".join(f"{i * frame_shift_s:.2f}," + ",".join(f"{v:.4f}" for v in row) + "\n"
                       for i, row in enumerate(table.tolist()))
        write_text(path, ",".join(["time", *columns]) + "\n" + rows)
    else:
        raise ValueError(f"unknown frames format {fmt!r}; expected npy or csv")
