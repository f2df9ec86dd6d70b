"""``streamseq eval``: ROC-AUC and F1 per SNR band on the held-out real recordings, then on the
synthetic validation split (or on any ``--data`` split)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="compare VAD models and peers on a labelled set",
                       description="Score models and baselines on the real-recordings validation split "
                                   "(human speakers, music and effects held out of training; needs "
                                   "scripts/setup.sh --train), then on the synthetic validation split, or on "
                                   "--data DIR with a manifest.jsonl, and print Markdown tables.")
    p.add_argument("--models", nargs="+", default=["vad-uni", "vad-bi"],
                   help="model names or checkpoints (default: %(default)s)")
    p.add_argument("--no-peers", action="store_true", help="skip the energy, WebRTC, Silero and TEN VAD baselines")
    p.add_argument("--data", type=Path, help="split directory with manifest.jsonl (default: the real-recordings "
                   "split, then the synthetic validation split)")
    p.add_argument("--cache", type=Path, help="corpus cache directory")
    p.add_argument("--by", nargs="*", default=["speech_source", "background"], help="extra per-group F1 tables")
    p.add_argument("--markdown", type=Path, help="also write the tables here")
    p.add_argument("--json", type=Path, help="also write all metrics here")
    p.set_defaults(run=run)


def _label(name: str) -> str:
    """``vad-uni`` stays; ``runs/vad-bi/best.pt`` becomes ``vad-bi/best``."""
    path = Path(name)
    return f"{path.parent.name}/{path.stem}" if path.suffix == ".pt" else name


def run(args: argparse.Namespace) -> int:
    from streamseq import load_model
    from streamseq.tasks.vad.baselines import available_scorers
    from streamseq.tasks.vad.evaluate import (
        SAMPLE_RATE,
        evaluate_scorers,
        group_table,
        load_split,
        markdown_tables,
        model_scorer,
    )

    if args.data is None:
        from streamseq.training.config import default_validation_split

        real = default_validation_split(args.cache, split="real")
        synthetic = default_validation_split(args.cache, split="valid")
        datasets = {"Real recordings (held-out speakers, music and effects)": real,
                    "Synthetic validation split": synthetic}
    else:
        datasets = {str(args.data): args.data}
    scorers = {_label(m): model_scorer(load_model(m)) for m in args.models}
    if not args.no_peers:
        peers = available_scorers()
        missing = {"webrtc", "silero", "ten"} - set(peers)
        if missing:
            print(f"[note] peers not installed: {', '.join(sorted(missing))} (pip install 'streamseq[peers]'; "
                  "TEN VAD also needs Debian's libc++1)", file=sys.stderr)
        scorers.update(peers)
    text, everything = "", {}
    for title, path in datasets.items():
        clips = load_split(path)
        hours = sum(a.size for a, _, _ in clips) / SAMPLE_RATE / 3600
        results = evaluate_scorers(clips, scorers)
        text += f"### {title}\n\n{len(clips)} clips, {hours:.2f} h from {path}\n\n" + markdown_tables(results)
        for key in args.by:
            text += f"\n**F1 by {key}**\n\n" + group_table(results, key)
        text += "\n"
        everything[title] = {n: {f"{k}={v}": m for (k, v), m in g.items()} for n, g in results.items()}
    print(text, end="")
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))
    return 0
