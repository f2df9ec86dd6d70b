"""``streamseq mic``: live VAD (or digits) from a microphone (or a file played in real time).

The streaming uni model answers every block; the bidirectional model buffers each utterance
and answers once the uni model has decided that it ended. See :mod:`streamseq.apps.live`.
Digits models (``--model-uni digits-uni``) also show the uni transcript growing digit by digit,
and each utterance's uni and bi transcripts with their waits.

What can be checked before the stream starts is checked then: the --input file (as strictly
as ``streamseq process`` checks it), the models, the device, and that --json, --screen and
--record can be written. Exit status: 0 the stream ended (or Ctrl-C); 1 it failed part-way (a decoder
error, NaN samples), after the summary and --json of the audio before that point; 2 bad
arguments or setup.
"""

from __future__ import annotations

import argparse
import json
import math
import queue
import sys
import time
from pathlib import Path
from typing import Any


def _seconds(text: str) -> float:
    """argparse type: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds; received {text!r}")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mic", help="live VAD from a microphone: streaming uni vs buffered bi model",
                       description="Live voice activity detection. The streaming uni-GRU answers per 10 ms frame "
                                   "as audio arrives; the bi-GRU buffers each utterance and answers when it ends. "
                                   "Delays are measured in stream time (audio seconds consumed). "
                                   "Models are shipped names or checkpoint files.")
    src = p.add_argument_group("audio")
    src.add_argument("--device", metavar="NAME|INDEX", help="input device: index or part of its name")
    src.add_argument("--list-devices", action="store_true", help="list input devices and exit")
    src.add_argument("--input", type=Path, metavar="FILE", help="play a sound file instead of the microphone")
    src.add_argument("--fast", action="store_true", help="with --input: do not pace the file in real time")
    src.add_argument("--block-ms", type=float, default=50.0, metavar="MS", help="block size (default: %(default)s)")
    src.add_argument("--queue-blocks", type=int, default=64, metavar="N",
                     help="blocks the audio thread may queue before it drops (default: %(default)s)")
    src.add_argument("--duration", type=_seconds, metavar="S", help="stop after S seconds of stream time")
    src.add_argument("--record", type=Path, metavar="FILE", help="write the processed audio to this WAV file")
    mod = p.add_argument_group("models")
    mod.add_argument("--model-uni", default="vad-uni", metavar="M", help="streaming model, e.g. digits-uni "
                     "(default: %(default)s)")
    mod.add_argument("--model-bi", metavar="M", help="buffered model of the same task (default: <task>-bi, the "
                     "shipped bi model of the uni model's task: vad-bi, digits-bi)")
    mod.add_argument("--no-bi", action="store_true", help="run the streaming model only")
    mod.add_argument("--threads", type=int, default=1, metavar="N",
                     help="torch threads; small blocks run fastest on one (default: %(default)s)")
    out = p.add_argument_group("output")
    out.add_argument("--plain", action="store_true", help="one line per event (the default when stdout is not a TTY)")
    out.add_argument("--json", type=Path, metavar="FILE", help="write segments, decisions and latencies as JSON")
    out.add_argument("--screen", type=Path, metavar="FILE", help="save the final live view as text")
    p.set_defaults(run=run)


def _fail(message: str, code: int = 2) -> int:
    print(f"streamseq mic: error: {message}", file=sys.stderr)
    return code


def _check_paths(args: argparse.Namespace) -> None:
    """Raise ValueError (naming the path) for an --input that `streamseq process` would reject, or an
    output that could not be written at the end of the run."""
    from streamseq.apps.writers import check_output_file
    from streamseq.audio.io import read_info

    for option in ("json", "screen", "record"):
        if (path := getattr(args, option)) is not None:
            check_output_file(path, f"--{option}")
    if args.input is not None:
        read_info(args.input)  # missing, empty, not audio, or a WAV shorter than its header says


def _stream_error(exc: Exception) -> str:
    """Why a stream stopped part-way, in the words `streamseq process` uses for the same file."""
    import soundfile as sf

    if isinstance(exc, sf.LibsndfileError):
        return f"decoding failed ({exc.error_string.removeprefix('Error : ').rstrip('.')}): truncated or corrupt file"
    return str(exc)


def _device_name(spec: str | None) -> str:
    from streamseq.audio.devices import list_input_devices, resolve_device

    index = resolve_device(spec)
    return "default input" if index is None else next(d["name"] for d in list_input_devices() if d["index"] == index)


def run(args: argparse.Namespace) -> int:
    import torch

    from streamseq import CheckpointError, load_model
    from streamseq.apps.live import LivePipeline
    from streamseq.audio.devices import NoInputDeviceError, PortAudioUnavailableError, describe_input_devices
    from streamseq.audio.source import FileSource, MicrophoneSource

    if args.fast and args.input is None:
        return _fail("--fast needs --input FILE (a microphone cannot be read faster than real time)")
    try:
        if args.list_devices:
            print(describe_input_devices())
            return 0
        _check_paths(args)
        torch.set_num_threads(args.threads)
        uni = load_model(args.model_uni)
        args.model_bi = args.model_bi or f"{uni.task}-bi"
        bi = None if args.no_bi else load_model(args.model_bi)
        pipeline = LivePipeline(uni, bi)
        if args.input is not None:
            source: Any = FileSource(args.input, args.block_ms / 1000, realtime=not args.fast, record_to=args.record)
            name = args.input.name
        else:
            source = MicrophoneSource(args.device, args.block_ms / 1000, queue_blocks=args.queue_blocks,
                                      record_to=args.record)
            name = _device_name(args.device)
        source.start()
    except (PortAudioUnavailableError, NoInputDeviceError, CheckpointError, ValueError, RuntimeError) as exc:
        return _fail(str(exc))
    try:
        title = (f"streamseq mic · {name} · {source.sample_rate} Hz · {args.block_ms:g} ms blocks · "
                 f"uni {Path(args.model_uni).stem}" + ("" if bi is None else f" · bi {Path(args.model_bi).stem}"))
        screen, failure = _drive(args, pipeline, source, title)
    finally:
        source.stop()
    return _save(args, pipeline, name, screen, failure)


def _save(args: argparse.Namespace, pipeline: Any, name: str, screen: str | None, failure: Exception | None) -> int:
    """Write --json and --screen (also after a failure: they cover the audio before it); the exit status."""
    from streamseq.apps.writers import write_text

    error = None
    if failure is not None:
        what = "the summary and --json cover" if args.json is not None else "the summary covers"
        error = (f"{args.input or name}: stopped at {pipeline.stream_s:.2f} s: {_stream_error(failure)}; "
                 f"{what} the audio before that point")
    models = {"uni": args.model_uni, "bi": None if args.no_bi else args.model_bi}
    try:
        if args.json is not None:
            write_text(args.json, json.dumps({"source": name, "models": models, "error": error} | pipeline.to_dict(),
                                             indent=1) + "\n")
        if args.screen is not None and screen is not None:
            write_text(args.screen, screen)
    except OSError as exc:
        return _fail(f"cannot write {exc.filename}: {exc.strerror or exc}", 1)
    return 0 if error is None else _fail(error, 1)


def _drive(args: argparse.Namespace, pipeline: Any, source: Any, title: str) -> tuple[str | None, Exception | None]:
    """Run the pipeline on its processing thread; show its events here until it ends or Ctrl-C.

    Returns the final screen as text when ``--screen`` asks for it, and the error that ended
    the stream part-way (None if it ended normally); the pipeline finished the stream either way."""
    from rich.console import Console
    from rich.live import Live

    from streamseq.apps.live_view import LiveView, PlainView

    cfg = pipeline.segmenter_config
    plain = args.plain or not sys.stdout.isatty()
    console = Console()
    window_s = 6.4 if plain else min(10.0, max(2.0, (console.width - 30) / 10))  # 0.1 s per column
    view = LiveView(title, bi=pipeline.bi is not None, window_s=window_s, onset=cfg.onset, offset=cfg.offset,
                    frame_shift_s=cfg.frame_shift_s, transcripts=pipeline.decoding is not None)
    printer = PlainView(sys.stdout) if plain else None
    if printer is not None:
        print(title, flush=True)
    events: queue.SimpleQueue = queue.SimpleQueue()
    thread = pipeline.start(source, duration_s=args.duration, on_event=events.put)
    live = None if plain else Live(view.render(), console=console, auto_refresh=False, transient=False)
    if live is not None:
        live.start()
    shown = 0.0
    try:
        while True:
            try:
                while thread.is_alive() or not events.empty():
                    try:
                        event = events.get(timeout=0.05)
                    except queue.Empty:
                        continue
                    view.update(event)
                    if printer is not None:
                        printer.update(event)
                    if live is not None and time.monotonic() - shown > 0.04:
                        live.update(view.render(), refresh=True)
                        shown = time.monotonic()
                break
            except KeyboardInterrupt:
                pipeline.stop()  # the processing thread finishes the stream; keep showing its last events
        failure = None
        try:
            summary = pipeline.join()
        except (ValueError, RuntimeError, OSError) as exc:  # a decoder error, NaN samples: finished before it
            failure, summary = exc, pipeline.summary()
        view.summary = summary
    finally:
        if live is not None:
            live.update(view.render(), refresh=True)
            live.stop()
    if printer is not None:
        printer.finish(summary)
    return (view.export_text() if args.screen is not None else None), failure
