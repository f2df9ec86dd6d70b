"""``streamseq process``: voice activity detection over sound files and folders.

Argument parsing and orchestration only; the work is in :mod:`streamseq.apps`. How long files
are bounded in memory (blocks for vad-uni, overlapping windows for vad-bi) is in DESCRIPTION
below (the --help text) and in :mod:`streamseq.apps.windowed`.
Results go to stdout (or ``--out DIR``), errors and the summary line to stderr. With
``--out``, a file is skipped only if each of its outputs records this run's settings (see
:mod:`streamseq.apps.process_files`). Exit status: 0 all files done, 1 a file failed or outputs
were in the way, 2 bad arguments (including an --out that cannot be written).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from streamseq.apps import OutputPlan, ProcessOptions, discover, load_task_model, run_files, shard
from streamseq.apps.process_files import check_outputs, output_collisions, run_settings, write_manifest
from streamseq.apps.writers import check_output_dir
from streamseq.audio.io import AudioFileError, read_info
from streamseq.tasks import TASKS, get_task, model_task
from streamseq.tasks.vad.postprocess import SegmenterConfig

DESCRIPTION = """\
Run VAD over files (WAV, FLAC, OGG, MP3, ... any rate, any channel count), folders (searched
recursively) and glob patterns. Files are read in blocks (--block), so memory stays flat.

vad-uni runs through the streaming Session: offline results equal live streaming.
vad-bi (bidirectional) needs context on both sides: it runs over windows of at most
--bi-window seconds; the first and last --bi-context seconds of each window are context whose
outputs are discarded (except at the ends of the file), so consecutive windows overlap by
2 x context and their kept parts tile the file. Buffered: the log-mel frames of one window,
16 KB per second at 40 mel bins (~1 MB for 60 s). Files shorter than window - context are
processed in one piece, exactly like streamseq.BufferedProcessor.

examples:
  streamseq process talk.wav                        # table on stdout
  streamseq process corpus/ --out vad/ --format rttm --jobs 4
  streamseq process 'data/**/*.flac' --out vad/ --shard 3/8 --frames npy
  streamseq process corpus/ --format rttm > all.rttm
"""


def _positive(kind: type) -> object:
    def parse(text: str) -> float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number; received {text}")
        return value
    parse.__name__ = kind.__name__
    return parse


def _channel(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"channels are numbered from 0; received {text}")
    return value


def _shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N such as 0/4; received {text!r}") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"expected 0 <= I < N; received {text!r}")
    return index, count


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("process", help="run VAD over sound files and folders", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, folders or glob patterns")
    p.add_argument("--model", default="vad-uni", help="vad-uni, vad-bi or a checkpoint file (default: %(default)s)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="write one output per input here, mirroring the input folders (default: stdout)")
    formats = dict.fromkeys(fmt for name in TASKS for fmt in get_task(name).writers.extensions)  # every task's
    p.add_argument("--format", choices=list(formats), help="default: table on stdout, json with --out; "
                   "several files on stdout: json (as JSON lines), csv, rttm, table")
    p.add_argument("--frames", choices=("npy", "csv"), help="also write per-frame speech probabilities (needs --out)")
    p.add_argument("--channel", type=_channel, metavar="N", help="use channel N only, 0 = first (default: average all)")
    p.add_argument("--jobs", type=_positive(int), default=1, metavar="N", help="parallel files (default: %(default)s)")
    p.add_argument("--threads", type=_positive(int), default=None, metavar="N", help="torch threads per process "
                   "(default: the machine's cores divided by --jobs)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--shard", type=_shard, metavar="I/N", help="only files k with k %% N == I of the sorted list")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    d = SegmenterConfig()
    seg = p.add_argument_group("segmentation (probabilities; durations in seconds)")
    seg.add_argument("--threshold", type=float, metavar="P", help="shorthand for --onset P --offset max(0, P - 0.15)")
    seg.add_argument("--onset", type=float, metavar="P", help=f"speech starts at prob >= onset (default: {d.onset})")
    seg.add_argument("--offset", type=float, metavar="P", help=f"and lasts while prob >= offset (default: {d.offset})")
    seg.add_argument("--min-speech", type=float, metavar="S", help=f"drop shorter segments (default: {d.min_speech_s})")
    seg.add_argument("--min-silence", type=float, metavar="S", help=f"bridge shorter gaps (default: {d.min_silence_s})")
    seg.add_argument("--pad", type=float, metavar="S", help=f"padding added at both ends (default: {d.pad_s})")
    seg.add_argument("--max-segment", type=float, metavar="S", help=f"cut longer segments (default: {d.max_segment_s})")
    long = p.add_argument_group("long files")
    long.add_argument("--block", type=_positive(float), metavar="S", default=10.0,
                      help="seconds read at a time (default: %(default)s)")
    long.add_argument("--bi-window", type=_positive(float), metavar="S", default=60.0,
                      help="vad-bi: most seconds per model call (default: %(default)s)")
    long.add_argument("--bi-context", type=float, metavar="S", default=5.0,
                      help="vad-bi: discarded context per side of a window (default: %(default)s)")
    p.set_defaults(run=run)


def _say(text: str) -> None:
    from tqdm import tqdm

    tqdm.write(text, file=sys.stderr)  # keeps progress bars intact


def _duration(path: Path) -> float:
    try:
        return read_info(path).duration
    except AudioFileError:
        return 0.0  # reported when it is processed


def _options(args: argparse.Namespace) -> ProcessOptions:
    if args.threshold is not None and (args.onset is not None or args.offset is not None):
        raise ValueError("give either --threshold or --onset/--offset, not both")
    seg = {"onset": args.onset, "offset": args.offset, "min_speech_s": args.min_speech,
           "min_silence_s": args.min_silence, "pad_s": args.pad, "max_segment_s": args.max_segment}
    if args.threshold is not None:
        seg |= {"onset": args.threshold, "offset": max(0.0, args.threshold - 0.15)}
    decoder = {k: v for k, v in seg.items() if v is not None}  # checked by the model's task (run_settings)
    if args.bi_context < 0 or 2 * args.bi_context >= args.bi_window:
        raise ValueError(f"expected 0 <= 2 * --bi-context < --bi-window; received {args.bi_context}, {args.bi_window}")
    if args.frames and not args.out:
        raise ValueError("--frames writes files: give --out DIR")
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.jobs)
    return ProcessOptions(args.model, decoder, args.channel, args.block, args.bi_window, args.bi_context, threads)


def _check_out(files: list, plan: OutputPlan, force: bool) -> tuple[list, int] | None:
    """Files still to do and the number skipped, or None (reported) when outputs are in the way."""
    assert plan.out_dir is not None
    if collisions := output_collisions(files, plan):
        for out, ins in collisions:
            _say(f"error: {', '.join(map(str, ins))} would all write {out}; process them into separate --out folders")
        return None
    check = check_outputs(files, plan, force)
    if (check.conflicts or check.changed) and not force:
        if check.changed:
            _say(f"error: {plan.out_dir} holds results of other settings ({', '.join(check.changed)} differ)")
        for path in check.conflicts[:10]:
            _say(f"error: {path} exists")
        _say(f"not overwriting {len(check.conflicts)} existing output(s): use --force or another --out")
        return None
    try:
        write_manifest(plan.out_dir, plan.settings)
    except OSError as exc:
        _say(f"error: cannot write in --out {plan.out_dir} ({exc.strerror or exc}); give a folder you can write to")
        return None
    return check.todo, len(check.skipped)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    try:
        options = _options(args)
        if args.out:
            check_output_dir(args.out, "--out")
        model = load_task_model(args.model)
        plan = OutputPlan(model_task(model).writers, args.out, args.format or ("json" if args.out else "table"),
                          args.frames, run_settings(model, options))
    except ValueError as exc:  # includes CheckpointError, a task that does not know the format or settings
        print(f"streamseq process: error: {exc}", file=sys.stderr)
        return 2
    files, problems = discover(args.paths)
    files = shard(files, *args.shard) if args.shard else files
    if not args.out and len(files) > 1 and plan.fmt not in plan.writers.multi_file:
        print(f"streamseq process: error: --format {plan.fmt} holds one file; give --out DIR for {len(files)} files",
              file=sys.stderr)
        return 2
    skipped = 0
    if args.out:
        if (todo := _check_out(files, plan, args.force)) is None:
            return 1
        files, skipped = todo
    for raw, reason in problems:
        _say(f"error: {raw}: {reason}")

    bars = not args.quiet and sys.stderr.isatty()
    total = sum(_duration(f.path) for f in files) if bars and len(files) <= 5000 else None  # headers only
    file_bar = tqdm(total=len(files), unit="file", desc="files", disable=not bars, file=sys.stderr, position=0)
    audio_bar = tqdm(total=total, unit="s", unit_scale=True, desc="audio", disable=not bars, file=sys.stderr,
                     position=1)
    ok = failed = printed = shown = 0
    audio = 0.0
    totals: dict[str, float] = {}
    waiting: dict[int, dict] = {}
    t0 = time.perf_counter()
    for report in run_files(files, options, plan, jobs=args.jobs, model=model, on_progress=audio_bar.update):
        file_bar.update(1)
        if report.ok:
            ok, audio = ok + 1, audio + report.duration
            totals = {k: totals.get(k, 0.0) + report.totals.get(k, 0.0) for k in totals.keys() | report.totals.keys()}
        else:
            failed += 1
            _say(f"error: {report.path}: {report.error}")
        waiting[report.index] = report.result or {}
        while printed in waiting:  # results on stdout in input order
            if result := waiting.pop(printed):
                # through tqdm: the bars (on stderr) are cleared first and redrawn below the text
                tqdm.write(plan.writers.render(result, plan.fmt, first=shown == 0, many=len(files) > 1),
                           file=sys.stdout, end="")
                sys.stdout.flush()
                shown += 1
            printed += 1
    file_bar.close()
    audio_bar.close()
    wall = time.perf_counter() - t0
    speed = f"{audio / wall:.0f}x real time" if wall > 0 and audio else "-"
    bad = failed + len(problems)
    print(f"streamseq process: {ok} file(s) ok, {bad} failed, {skipped} skipped (already done); "
          f"{audio / 3600:.3f} h audio, {plan.writers.describe(totals)}; {speed} ({wall:.1f} s)", file=sys.stderr)
    return 1 if bad else 0
