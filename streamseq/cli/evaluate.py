"""``streamseq eval``: VAD models: ROC-AUC and F1 per SNR band on the held-out real recordings, then on
the synthetic validation split; digits models: digit error rate and string accuracy per SNR band on
the digits corpus's validation split. Or either on any ``--data`` split of its task."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

#: Extra per-group tables when ``--by`` is not given, per task.
DEFAULT_BY = {"vad": ["speech_source", "background"], "digits": ["speech_source"]}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="compare models and peers of one task on a labelled set",
                       description="Score models and baselines of one task (VAD or digits, from the models) on "
                                   "a labelled split and print Markdown tables. VAD: the real-recordings "
                                   "validation split (human speakers, music and effects held out of training; "
                                   "needs scripts/setup.sh --train), then the synthetic validation split. Digits: "
                                   "the digits corpus's validation split (unseen TTS voices). Or --data DIR with "
                                   "a manifest.jsonl.")
    p.add_argument("--models", nargs="+", default=["vad-uni", "vad-bi"],
                   help="model names or checkpoints, all of one task (default: %(default)s)")
    p.add_argument("--no-peers", action="store_true", help="skip the baselines (VAD: energy, WebRTC, Silero and "
                   "TEN VAD; digits: PocketSphinx)")
    p.add_argument("--data", type=Path, help="split directory with manifest.jsonl (default: VAD: the real-recordings "
                   "split, then the synthetic validation split; digits: the digits validation split)")
    p.add_argument("--cache", type=Path, help="corpus cache directory")
    p.add_argument("--by", nargs="*", help="extra per-group tables (default: VAD: F1 by speech_source and "
                   "background; digits: digit error rate by speech_source)")
    p.add_argument("--markdown", type=Path, help="also write the tables here")
    p.add_argument("--json", type=Path, help="also write all metrics here")
    p.set_defaults(run=run)


def _label(name: str) -> str:
    """``vad-uni`` stays; ``runs/vad-bi/best.pt`` becomes ``vad-bi/best``."""
    path = Path(name)
    return f"{path.parent.name}/{path.stem}" if path.suffix == ".pt" else name


def run(args: argparse.Namespace) -> int:
    from streamseq import load_model

    models = {m: load_model(m) for m in args.models}
    tasks = {m: model.task for m, model in models.items()}
    if len(set(tasks.values())) > 1:
        print("streamseq eval: error: the models are of different tasks (" + ", ".join(f"{m}: {t}" for m, t in
              tasks.items()) + "); evaluate one task per call", file=sys.stderr)
        return 2
    task = next(iter(tasks.values()))
    if task == "digits":
        text, everything = _digits(args, models)
    elif task == "vad":
        text, everything = _vad(args, models)
    else:
        print(f"streamseq eval: error: no evaluation for task {task!r} (models {', '.join(models)}); it evaluates "
              "the tasks vad and digits", file=sys.stderr)
        return 2
    print(text, end="")
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))
    return 0


def _vad(args: argparse.Namespace, models: dict) -> tuple[str, dict]:
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
    scorers = {_label(m): model_scorer(model) for m, model in models.items()}
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
        for key in DEFAULT_BY["vad"] if args.by is None else args.by:
            text += f"\n**F1 by {key}**\n\n" + group_table(results, key)
        text += "\n"
        everything[title] = {n: {f"{k}={v}": m for (k, v), m in g.items()} for n, g in results.items()}
    return text, everything


def _digits(args: argparse.Namespace, models: dict) -> tuple[str, dict]:
    from streamseq.tasks.digits.baselines import available_recognizers
    from streamseq.tasks.digits.evaluate import (
        SAMPLE_RATE,
        default_split,
        evaluate_recognizers,
        group_table,
        load_split,
        markdown_tables,
        model_recognizer,
    )

    path = default_split(args.cache) if args.data is None else args.data
    title = "Digits validation split (unseen TTS voices)" if args.data is None else str(path)
    recognizers = {_label(m): model_recognizer(model) for m, model in models.items()}
    if not args.no_peers:
        peers = available_recognizers()
        if "pocketsphinx" not in peers:
            print("[note] peers not installed: pocketsphinx (pip install 'streamseq[peers]')", file=sys.stderr)
        recognizers.update(peers)
    clips = load_split(path)
    hours = sum(a.size for a, _ in clips) / SAMPLE_RATE / 3600
    by = DEFAULT_BY["digits"] if args.by is None else args.by
    results = evaluate_recognizers(clips, recognizers, ["snr_band", *by])
    text = f"### {title}\n\n{len(clips)} clips, {hours:.2f} h from {path}\n\n" + markdown_tables(results)
    for key in by:
        text += f"\n**Digit error rate by {key}**\n\n" + group_table(results, key)
    text += "\n"
    return text, {title: {n: {f"{k}={v}": m for (k, v), m in g.items()} for n, g in results.items()}}
