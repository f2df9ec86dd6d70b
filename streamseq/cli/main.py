"""``streamseq`` command line: one subcommand per module in :mod:`streamseq.cli`."""

from __future__ import annotations

import argparse
import importlib
import sys

from streamseq.version import __version__

COMMANDS = {
    "process": "streamseq.cli.process",
    "mic": "streamseq.cli.mic",
    "serve": "streamseq.cli.serve",
    "latency": "streamseq.cli.latency",
    "train": "streamseq.cli.train",
    "eval": "streamseq.cli.evaluate",
    "export": "streamseq.cli.export",
    "doctor": "streamseq.cli.doctor",
    "experiment": "streamseq.cli.experiment",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamseq", description="Online speech processing with recurrent networks.")
    parser.add_argument("--version", action="version", version=f"streamseq {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS.values():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue  # subcommand not part of this build
            raise
        mod.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
