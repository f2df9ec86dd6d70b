"""``streamseq latency``: streaming vs lookahead vs whole-utterance models, through the real streaming path.

VAD models get the segment report here; models of a task with its own report (digits: per-digit
emission delays, :func:`streamseq.apps.latency.task_report`) get that one, on that task's data.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path
from types import ModuleType

from streamseq.apps.latency import DEFAULT_MODELS

FILES = ("latency.md", "latency.csv", "latency-accuracy.png", "timeline.png")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("latency", help="measure detection delay, compute time and accuracy per model",
                       description="Feed each model chunk by chunk as a microphone would (Session for uni, "
                                   "BufferedProcessor per clip for bi), decode its outputs with its task, and report "
                                   "delays against the reference, wall-clock time per chunk and accuracy. VAD: "
                                   "segment decisions; digits (e.g. --models digits-uni digits-uni-d10 digits-bi): "
                                   "per-digit emission delay, end of utterance -> final transcript, digit error "
                                   "rate and string accuracy.")
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), metavar="NAME_OR_PATH",
                   help="shipped model names or checkpoint files, all of one task (default: %(default)s)")
    p.add_argument("--data", type=Path, help="split directory with manifest.jsonl (default: the validation split "
                   "of the models' task)")
    p.add_argument("--cache", type=Path,
                   help="corpus cache directory (default: $STREAMSEQ_CACHE or ~/.cache/streamseq)")
    p.add_argument("--limit", type=int, default=0, help="use only the first N clips (default: all)")
    p.add_argument("--chunk-ms", type=float, default=32.0, help="audio per accept call, ms (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch threads while timing (default: %(default)s)")
    p.add_argument("--oracle", action="store_true", help="VAD: add a row for the reference labels themselves "
                   "(the delay floor set by the Segmenter's minimum durations)")
    p.add_argument("--timeline-clip", type=int,
                   help="clip index for the timeline plot (default: a short one with pauses)")
    p.add_argument("--out", type=Path, default=Path("latency-report"), help="report directory (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="overwrite an existing report in --out")
    p.set_defaults(run=run)


def _clips(args: argparse.Namespace) -> list:
    from streamseq.tasks.vad.evaluate import load_split

    if args.data is None:
        from streamseq.training.config import default_validation_split

        print("validation split of the training corpus (built on first use) ...", file=sys.stderr)
        args.data = default_validation_split(args.cache)
    clips = load_split(args.data)
    return clips[: args.limit] if args.limit > 0 else clips


def run(args: argparse.Namespace) -> int:
    import torch

    from streamseq.apps import latency as lat
    from streamseq.apps.latency_plots import pick_timeline_clip, plot_timeline, plot_tradeoff
    from streamseq.tasks.vad.evaluate import SAMPLE_RATE
    from streamseq.tasks.vad.postprocess import SegmenterConfig

    if args.chunk_ms <= 0 or args.threads < 1:
        print(f"error: expected --chunk-ms > 0 and --threads >= 1, received {args.chunk_ms}, {args.threads}",
              file=sys.stderr)
        return 2
    try:
        models, missing = lat.load_models(args.models)
    except ValueError as exc:  # CheckpointError included: damaged, foreign, wrong task, mixed tasks
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for message in missing:
        print(f"[missing] {message}", file=sys.stderr)
    if not models:
        print("error: none of the requested models exist; nothing to measure", file=sys.stderr)
        return 2
    report = lat.task_report(next(iter(models.values())))
    existing = [f for f in (FILES if report is None else report.FILES) if (args.out / f).exists()]
    if existing and not args.force:
        print(f"error: {args.out} already holds {', '.join(existing)}; pass --force to overwrite", file=sys.stderr)
        return 2
    if report is not None:
        return _task_report(args, report, models)
    try:
        clips = _clips(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not clips:
        print(f"error: no clips in {args.data}", file=sys.stderr)
        return 2
    index = pick_timeline_clip(clips) if args.timeline_clip is None else args.timeline_clip
    if not 0 <= index < len(clips):
        print(f"error: --timeline-clip {index} is out of range (0..{len(clips) - 1})", file=sys.stderr)
        return 2

    torch.set_num_threads(args.threads)
    config, chunk = SegmenterConfig(), args.chunk_ms
    labels = [y for _, y, _ in clips]
    rows, traces = [], {}
    for name, model in models.items():
        print(f"measuring {name} ...", file=sys.stderr)
        lat.warm_up(model)
        measured = lat.measure(model, clips, chunk, config)
        rows.append(lat.summarize(name, measured, labels, model.lookahead_ms))
        traces[name] = measured
    if args.oracle:
        measured = lat.measure(lambda y: lat.ReferenceProcessor(y), clips, chunk, config)
        rows.append(lat.summarize(lat.ORACLE, measured, labels, 0.0))

    hours = sum(a.size for a, _, _ in clips) / SAMPLE_RATE / 3600
    where = str(args.data).replace(str(Path.home()), "~")
    header = (f"{len(clips)} clips ({hours:.2f} h) from `{where}`; chunks of {chunk:g} ms; Segmenter onset "
              f"{config.onset}, offset {config.offset}, min speech {config.min_speech_s * 1000:.0f} ms, min silence "
              f"{config.min_silence_s * 1000:.0f} ms, pad {config.pad_s * 1000:.0f} ms; compute on "
              f"{_cpu()} ({os.cpu_count()} cores) with {args.threads} torch thread(s).")
    _print_table(rows, lat, header)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latency.md").write_text(f"{header}\n\n{lat.markdown_table(rows)}")
    lat.write_csv(rows, args.out / "latency.csv")
    plot_tradeoff([r for r in rows if r.model != lat.ORACLE], args.out / "latency-accuracy.png")
    audio, y, _ = clips[index]
    plot_timeline(audio, y, {n: m[index] for n, m in traces.items()}, args.out / "timeline.png")
    print(f"wrote {', '.join(str(args.out / f) for f in FILES)}", file=sys.stderr)
    return 0


def _task_report(args: argparse.Namespace, report: ModuleType, models: dict) -> int:
    """The models' task's own report (:func:`streamseq.apps.latency.task_report`) on its data."""
    import torch

    from streamseq.apps import latency as lat

    task = next(iter(models.values())).task
    if args.oracle:
        print(f"error: --oracle is a row of the VAD report; the {task} report has none", file=sys.stderr)
        return 2
    try:
        if args.data is None:
            print(f"validation split of the {task} corpus (built on first use) ...", file=sys.stderr)
            args.data = report.default_split(args.cache)
        clips = report.load_clips(args.data)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    clips = clips[: args.limit] if args.limit > 0 else clips
    if not clips:
        print(f"error: no clips in {args.data}", file=sys.stderr)
        return 2
    index = report.pick_timeline_clip(clips) if args.timeline_clip is None else args.timeline_clip
    if not 0 <= index < len(clips):
        print(f"error: --timeline-clip {index} is out of range (0..{len(clips) - 1})", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    for model in models.values():
        lat.warm_up(model)

    def stream(processor, audio):
        return lat.stream_arrivals(processor, audio, args.chunk_ms, sample_rate=report.SAMPLE_RATE)

    result = report.run_report(models, clips, stream, out=args.out, timeline_clip=index, chunk_ms=args.chunk_ms,
                               source=str(args.data).replace(str(Path.home()), "~"),
                               machine=f"{_cpu()} ({os.cpu_count()} cores) with {args.threads} torch thread(s)",
                               progress=lambda line: print(line, file=sys.stderr))
    print(result.markdown)
    print(f"wrote {', '.join(str(args.out / f) for f in report.FILES)}", file=sys.stderr)
    return 0


def _cpu() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        info = []
    names = [ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def _print_table(rows: list, lat, header: str) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain Markdown when rich is missing
        print(header + "\n\n" + lat.markdown_table(rows))
        return
    console = Console()
    for title, columns in (("decision delay after the reference boundary, stream time (ms)", range(5)),
                           ("compute on this machine (ms)", [0, 5, 6, 7]), ("accuracy", [0, *range(8, 12)])):
        table = Table(*[lat.SHORT_HEADER[c] for c in columns], title=title, pad_edge=False)
        table.columns[0].no_wrap = True
        for r in rows:
            cells = lat.table_cells(r, units=False)
            table.add_row(*[cells[c] for c in columns])
        console.print(table)
    console.print(header + "\n")
