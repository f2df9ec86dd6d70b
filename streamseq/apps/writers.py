"""Output formats for VAD results, atomic file writing, and checks that outputs can be written.

Every renderer takes the result dictionary of one file (the JSON format itself)::

    {"file": str, "duration": s, "sample_rate": Hz, "model": str,
     "segments": [{"start": s, "end": s, "mean_prob": p}, ...]}

and returns text. Times are seconds (3 decimals, Audacity 6), probabilities 4 decimals.
Formats that name the file (json lines, csv, rttm, table) can be concatenated over files.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np

__all__ = [
    "EXTENSIONS", "FRAME_EXTENSIONS", "MULTI_FILE_FORMATS", "atomic_write", "check_output_dir", "check_output_file",
    "render", "write_frames",
]

EXTENSIONS = {"json": ".json", "csv": ".csv", "rttm": ".rttm", "audacity": ".txt", "srt": ".srt", "table": ".txt"}
FRAME_EXTENSIONS = {"npy": ".frames.npy", "csv": ".frames.csv"}
MULTI_FILE_FORMATS = ("json", "csv", "rttm", "table")  # can share one stdout (json as JSON lines)


def _json(result: dict, *, first: bool, many: bool) -> str:
    return json.dumps(result) + "\n" if many else json.dumps(result, indent=1) + "\n"


def _csv(result: dict, *, first: bool, many: bool) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if first:
        writer.writerow(["file", "start", "end", "mean_prob"])
    for s in result["segments"]:
        writer.writerow([result["file"], f"{s['start']:.3f}", f"{s['end']:.3f}", f"{s['mean_prob']:.4f}"])
    return buf.getvalue()


def rttm_uri(file: str) -> str:
    """RTTM recording id: the file name without extension, whitespace replaced by ``_``."""
    return "_".join(Path(file).stem.split()) or "_"


def _rttm(result: dict, *, first: bool, many: bool) -> str:
    uri = rttm_uri(result["file"])
    return "".join(
        f"SPEAKER {uri} 1 {s['start']:.3f} {s['end'] - s['start']:.3f} <NA> <NA> speech <NA> <NA>\n"
        for s in result["segments"]
    )


def _audacity(result: dict, *, first: bool, many: bool) -> str:
    return "".join(f"{s['start']:.6f}\t{s['end']:.6f}\tspeech\n" for s in result["segments"])


def srt_time(seconds: float) -> str:
    """``HH:MM:SS,mmm``."""
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def _srt(result: dict, *, first: bool, many: bool) -> str:
    return "".join(
        f"{i}\n{srt_time(s['start'])} --> {srt_time(s['end'])}\nspeech\n\n"
        for i, s in enumerate(result["segments"], 1)
    )


def _table(result: dict, *, first: bool, many: bool) -> str:
    segs, duration = result["segments"], result["duration"]
    speech = sum(s["end"] - s["start"] for s in segs)
    lines = [] if first else [""]
    lines.append(f"{result['file']}  ({duration:.2f} s, {result['sample_rate']} Hz, model {result['model']})")
    if segs:
        lines.append(f"{'#':>5} {'start':>10} {'end':>10} {'length':>8} {'prob':>6}")
        lines += [
            f"{i:>5} {s['start']:>10.3f} {s['end']:>10.3f} {s['end'] - s['start']:>8.3f} {s['mean_prob']:>6.3f}"
            for i, s in enumerate(segs, 1)
        ]
    share = 100 * speech / duration if duration else 0.0
    lines.append(f"speech: {speech:.2f} s in {len(segs)} segment(s), {share:.1f}% of the file")
    return "\n".join(lines) + "\n"


_RENDERERS: dict[str, Callable[..., str]] = {
    "json": _json, "csv": _csv, "rttm": _rttm, "audacity": _audacity, "srt": _srt, "table": _table,
}


def render(result: dict, fmt: str, *, first: bool = True, many: bool = False) -> str:
    """Text of one file's result in ``fmt``.

    ``first``: this is the first file on a shared output (CSV header, table spacing).
    ``many``: several files share the output (JSON becomes one compact line per file).
    """
    if fmt not in _RENDERERS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(_RENDERERS)}")
    return _RENDERERS[fmt](result, first=first, many=many)


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


def write_frames(path: Path, probs: np.ndarray, fmt: str, frame_shift_s: float) -> None:
    """Atomically write per-frame speech probabilities ``(T,)``: ``npy`` float32 or ``csv``.

    CSV rows are ``time,prob`` with ``time`` the start of the frame in seconds.
    """
    probs = np.asarray(probs, dtype=np.float32)
    if fmt == "npy":
        atomic_write(path, lambda f: np.save(f, probs))
    elif fmt == "csv":
        rows = "".join(f"{i * frame_shift_s:.2f},{p:.4f}\n" for i, p in enumerate(probs.tolist()))
        write_text(path, "time,prob\n" + rows)
    else:
        raise ValueError(f"unknown frames format {fmt!r}; expected npy or csv")
