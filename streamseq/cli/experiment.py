"""``streamseq experiment {gradients,clipping,cells,all}``: the recurrent-cell experiments of
:mod:`streamseq.experiments`, written as tables, plots and JSON into ``--out``."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

EXPERIMENTS = ("gradients", "clipping", "cells")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="gradient flow, clipping and cell comparison experiments (tables, plots)",
                       description="Train small VAD models with the shared training core and measure gradient "
                                   "flow through time, the effect of gradient clipping, and GRU vs LSTM vs tanh "
                                   "RNN at an equal parameter budget. Trained runs are kept in --work and reused "
                                   "(by the other experiments too); delete it to train again.")
    p.add_argument("which", choices=[*EXPERIMENTS, "all"], help="the experiment to run, or all three")
    p.add_argument("--out", type=Path, default=Path("docs/cells"),
                   help="folder for the tables, plots and JSON (default: %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help="tiny corpus, models and epochs: checks that everything runs (about a minute), "
                        "numbers meaningless")
    p.add_argument("--work", type=Path, default=None,
                   help="folder of the training runs (default: runs/experiments, runs/experiments-quick with --quick)")
    p.add_argument("--cache", type=Path, default=None,
                   help="corpus cache directory (default: $STREAMSEQ_CACHE or ~/.cache/streamseq)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="training processes at once, one thread each (default: %(default)s, the CPU count)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import importlib

    from streamseq.data.corpus import DEFAULT_CACHE
    from streamseq.experiments.common import FULL, QUICK, Workspace

    started = time.perf_counter()
    work = args.work or Path("runs/experiments-quick" if args.quick else "runs/experiments")
    ws = Workspace(QUICK if args.quick else FULL, work, args.cache or DEFAULT_CACHE, jobs=args.jobs,
                   progress=not args.quiet)
    names = EXPERIMENTS if args.which == "all" else (args.which,)
    modules = [importlib.import_module(f"streamseq.experiments.{name}") for name in names]
    ws.log(f"equal parameter budget (hidden sizes): {ws.hidden}")
    ws.runs([cfg for m in modules for cfg in m.configs(ws)])  # every run first: the pool packs them all
    for name, module in zip(names, modules, strict=True):
        t0 = time.perf_counter()
        module.report(ws, args.out)
        ws.log(f"{name}: written to {args.out} ({time.perf_counter() - t0:.0f} s)")
    ws.log(f"done in {time.perf_counter() - started:.0f} s")
    return 0
