"""How late does each VAD model decide? Stream labelled clips through each model, 32 ms at a time.

    python examples/latency_comparison.py --data DIR --models vad-uni vad-uni-d10 vad-bi

A uni model answers every 10 ms frame as audio arrives (``Session``); a bi model answers only
once the clip has ended (``BufferedProcessor``). The Segmenter turns answers into speech
segments; each decision is timed against the reference labels. ``streamseq latency`` is the
full report (CSV, plots); this is the core of it on the public API.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import streamseq
from streamseq.apps.latency import ReferenceProcessor, measure, model_label
from streamseq.tasks.vad.evaluate import load_split


def get_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="split directory with manifest.jsonl")
    p.add_argument("--models", nargs="+", default=["vad-uni", "vad-uni-d10", "vad-bi"], help="(default: %(default)s)")
    p.add_argument("--chunk-ms", type=float, default=32.0, help="audio per accept call (default: %(default)s)")
    p.add_argument("--limit", type=int, default=20, help="clips to use (default: %(default)s)")
    return p.parse_args()


def report(name: str, measured: list) -> None:
    onset = [d for m in measured for d in m.onset_delays_s]
    offset = [d for m in measured for d in m.offset_delays_s]
    chunk_ms = 1000 * np.concatenate([m.chunk_wall_s for m in measured])
    median = lambda xs: 1000 * np.median(xs) if len(xs) else float("nan")  # noqa: E731
    print(f"{name:>18}: onset decided {median(onset):5.0f} ms after speech began, end {median(offset):5.0f} ms "
          f"after it ended; {np.median(chunk_ms):.2f} ms compute per chunk")


def main() -> int:
    args = get_args()
    clips = load_split(args.data)[: args.limit]
    print(f"{len(clips)} clips, chunks of {args.chunk_ms:g} ms (medians over reference speech segments)")
    for name in args.models:
        try:
            model = streamseq.load_model(name)
        except streamseq.CheckpointError as exc:  # e.g. not built yet: make models
            print(f"skipping {name}: {exc}", file=sys.stderr)
            continue
        report(model_label(model), measure(model, clips, args.chunk_ms))  # Session or BufferedProcessor
    # The floor: a perfect model, delayed only by the Segmenter's minimum speech/silence durations.
    report("reference labels", measure(lambda labels: ReferenceProcessor(labels), clips, args.chunk_ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
