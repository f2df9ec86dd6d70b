"""``streamseq export``: write a model's streaming step as TorchScript and/or ONNX, verified."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

FORMAT_CHOICES = ("torchscript", "onnx")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="export the streaming step (TorchScript, ONNX) of a unidirectional model",
        description="Write (frames (B, n, F), h (L, B, S)) -> (values, h) with normalisation and activation "
                    "inside, plus export.json (shapes, what h holds: an LSTM's h and c side by side, output "
                    "delay, feature settings). Each file is loaded "
                    "back and compared with the eager model.",
    )
    p.add_argument("model", help="shipped model name (vad-uni) or checkpoint file")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--format", nargs="+", choices=FORMAT_CHOICES, default=list(FORMAT_CHOICES),
                   help="formats to write (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="overwrite files already in --out")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from streamseq.apps.writers import check_output_dir
    from streamseq.models import load_model
    from streamseq.models.export import FORMATS, export

    targets = [args.out / FORMATS[f] for f in args.format] + [args.out / "export.json"]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not args.force:
        print(f"error: {', '.join(existing)} already exist(s); pass --force to overwrite", file=sys.stderr)
        return 1
    try:
        check_output_dir(args.out, "--out")
        model = load_model(args.model)
    except ValueError as exc:  # CheckpointError included
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not model.streaming:
        print(f"error: {args.model} is a kind={model.config.kind!r} model; only 'uni' models have a "
              "streaming step to export", file=sys.stderr)
        return 1
    try:
        paths = export(model, args.out, tuple(args.format))
    except ModuleNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot write in --out {args.out} ({exc.strerror or exc}); give a folder you can write to",
              file=sys.stderr)
        return 1
    checks = json.loads(paths["meta"].read_text())["max_abs_diff_vs_eager"]
    for fmt in args.format:
        diff = checks[fmt]
        verdict = "not verified (onnxruntime not installed)" if diff is None else f"max |diff| vs eager {diff:.2e}"
        print(f"{fmt:>11}: {paths[fmt]}  ({verdict})")
    print(f"{'metadata':>11}: {paths['meta']}")
    return 0
