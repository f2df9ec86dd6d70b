"""The examples run as documented, on the bundled recording (phrases start at 1.0, 6.5 and 11.0 s)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each test runs an example script in a subprocess

ROOT = Path(__file__).resolve().parents[1]
RECORDING = ROOT / "examples" / "audio" / "meeting_snippet.flac"
PHRASE_STARTS = [1.0, 6.5, 11.0]  # scripts/make_example_audio.py


def run_example(name: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "examples" / name), *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_process_files_example_finds_the_three_phrases():
    out = run_example("process_files.py", str(RECORDING))
    starts = [float(m) for m in re.findall(r"^\s+\d+\s+([\d.]+)\s+[\d.]+", out, re.M)]
    assert len(starts) == 3 and all(abs(s - t) < 0.1 for s, t in zip(starts, PHRASE_STARTS, strict=True)), out


def test_live_mic_demo_example_answers_uni_first_and_bi_after_each_phrase():
    out = run_example("live_mic_demo.py", "--input", str(RECORDING), "--fast")
    uni = [float(m) for m in re.findall(r"^\s*([\d.]+)s\s+uni: segment", out, re.M)]
    bi = [float(m) for m in re.findall(r"^\s*([\d.]+)s\s+bi:", out, re.M)]
    assert len(uni) == len(bi) == 3, out
    assert all(u <= b for u, b in zip(uni, bi, strict=True)), out  # bi decides only once uni has closed the utterance
