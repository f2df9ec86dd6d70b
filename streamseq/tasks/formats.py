"""Text pieces every task's outputs and reports share: JSON results, file ids, SRT times, CSV rows, SNR band order."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np


def json_text(result: dict, *, first: bool, many: bool) -> str:
    """One file's result: indented alone, one line per file when several share an output."""
    return json.dumps(result) + "\n" if many else json.dumps(result, indent=1) + "\n"


def rttm_uri(file: str) -> str:
    """RTTM/CTM recording id: the file name without extension, whitespace replaced by ``_``."""
    return "_".join(Path(file).stem.split()) or "_"


def srt_time(seconds: float) -> str:
    """``HH:MM:SS,mmm``."""
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def rows_csv(rows: Sequence[Any], row_type: type, path: str | os.PathLike) -> Path:
    """Dataclass ``rows`` (of ``row_type``) as CSV: every field, full precision, None as an empty cell."""
    path = Path(path)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[fl.name for fl in fields(row_type)])
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in asdict(r).items()})
    return path


def percentile_ms(values: Sequence[float] | np.ndarray, q: float) -> float:
    """The ``q``-th percentile of durations in seconds, in milliseconds; NaN for none."""
    return float(np.percentile(values, q)) * 1000 if len(values) else float("nan")


def band_order(band: str) -> tuple[int, float, str]:
    """Sort key: "clean" first, then SNR bands ("20..30", "10", ...) from the highest SNR down, then any other name."""
    if band == "clean":
        return (0, 0.0, band)
    try:
        return (1, -float(band.split("..")[0]), band)
    except ValueError:
        return (2, 0.0, band)
