"""Text pieces every task's output formats share: JSON results, file ids, SRT times."""

from __future__ import annotations

import json
from pathlib import Path


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
