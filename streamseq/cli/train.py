"""``streamseq train``: build (or reuse) the task's data (``--task``, VAD: the synthetic corpus),
then train one model."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from dataclasses import fields
from pathlib import Path
from typing import Literal, get_args, get_origin, get_type_hints

from streamseq.training.config import TrainConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a uni or bi model (GRU, LSTM or RNN) on the synthetic corpus",
                       description="Train a model with the shared training core. Flags override --config. "
                                   "Runs data-parallel under torchrun, e.g. `torchrun --standalone "
                                   "--nproc-per-node 2 -m streamseq.cli.main train ... --threads 1`.")
    p.add_argument("--config", type=Path, help="JSON file of TrainConfig fields")
    defaults, hints = TrainConfig(), get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        choices = get_args(hints[f.name]) if get_origin(hints[f.name]) is Literal else None  # --kind, --cell
        p.add_argument(flag, type=type(getattr(defaults, f.name)), default=None, choices=choices,
                       help=f"(default: {getattr(defaults, f.name)})")
    p.add_argument("--out", type=Path, required=True, help="run directory (best.pt, last.pt, resume state)")
    p.add_argument("--cache", type=Path, default=None,
                   help="corpus cache directory (default: $STREAMSEQ_CACHE or ~/.cache/streamseq)")
    p.add_argument("--no-resume", action="store_true", help="start over even if OUT holds a resumable run")
    p.add_argument("--install-as", type=Path, default=None,
                   help="copy best.pt here when done (e.g. streamseq/pretrained/vad-uni.pt)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of parsed ``train`` arguments: ``--config`` (if any), then the flags given."""
    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    if args.config:
        return TrainConfig.from_json(args.config, **overrides)
    return TrainConfig(**{k: v for k, v in overrides.items() if v is not None})


def run(args: argparse.Namespace) -> int:
    from streamseq.data.corpus import DEFAULT_CACHE
    from streamseq.data.dataset import FeatureSet
    from streamseq.features import FeatureConfig
    from streamseq.tasks import get_task
    from streamseq.training.trainer import Trainer

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # started by torchrun: one process per core
        import torch.distributed as dist

        dist.init_process_group("gloo")
    cfg = config_from_args(args)
    task = get_task(cfg.task)
    corpus = task.build_data(cfg, args.cache or DEFAULT_CACHE, jobs=os.cpu_count() or 1, progress=not args.quiet)
    feats = FeatureConfig(n_mels=cfg.n_mels)
    train = FeatureSet(corpus / "train", feats, task=task, progress=not args.quiet)
    valid = FeatureSet(corpus / cfg.select_split, feats, task=task, progress=not args.quiet)
    print(f"corpus {corpus}: {len(train)} train clips, {len(valid)} {cfg.select_split} clips "
          "(best epoch picked on these)")
    trainer = Trainer(cfg, task, args.out, progress=not args.quiet)
    best = trainer.fit(train, valid, resume=not args.no_resume)
    print(json.dumps({"best": best, "out": str(args.out)}, indent=1))
    if args.install_as and int(os.environ.get("RANK", "0")) == 0:
        args.install_as.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.out / "best.pt", args.install_as)
        print(f"installed {args.out / 'best.pt'} -> {args.install_as}")
    return 0
