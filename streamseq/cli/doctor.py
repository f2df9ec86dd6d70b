"""``streamseq doctor``: check everything outside Python's own packages that streamseq uses."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Check the Python version, torch + torchaudio loading together, soundfile, the shipped models,
onnxruntime, the peers for eval, every Debian package streamseq reads files from (found through
dpkg, where the package installs them), PortAudio and input devices, each TTS engine and the
voices the corpus uses, the cache folder and free disk for the training corpus.
Prints one table. Exit status 1 when a required part is missing; optional parts (microphone,
peers, onnxruntime, disk for training) only warn."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check the installation and say what to fix", description=DESCRIPTION)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from streamseq.apps.doctor import env_summary, run_checks

    checks = run_checks()
    style = {"ok": "green", "warn": "yellow", "missing": "bold red"}
    table = Table(title=env_summary(), title_justify="left", show_lines=False)
    table.add_column("component", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("found / what to do", overflow="fold")
    for c in checks:
        table.add_row(c.component, f"[{style[c.status]}]{c.status}[/]", c.detail)
    console = Console(width=max(Console().width, 140), highlight=False)
    console.print(table)
    failed = [c.component for c in checks if c.failed]
    warned = sum(c.status == "warn" for c in checks)
    if failed:
        console.print(f"[bold red]streamseq doctor: {len(failed)} required part(s) missing: {', '.join(failed)}[/]")
        return 1
    console.print(f"streamseq doctor: all required parts present ({warned} warning(s))")
    return 0
