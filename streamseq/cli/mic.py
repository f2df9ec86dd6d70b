"""``streamseq mic``: live VAD from a microphone (or a file played in real time).

The streaming uni model answers every block; the bidirectional model buffers each utterance
and answers once the uni model has decided that it ended. See :mod:`streamseq.apps.live`.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import time
from pathlib import Path
from typing import Any


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
    src.add_argument("--duration", type=float, metavar="S", help="stop after S seconds of stream time")
    src.add_argument("--record", type=Path, metavar="FILE", help="write the processed audio to this WAV file")
    mod = p.add_argument_group("models")
    mod.add_argument("--model-uni", default="vad-uni", metavar="M", help="streaming model (default: %(default)s)")
    mod.add_argument("--model-bi", default="vad-bi", metavar="M", help="buffered model (default: %(default)s)")
    mod.add_argument("--no-bi", action="store_true", help="run the streaming model only")
    mod.add_argument("--threads", type=int, default=1, metavar="N",
                     help="torch threads; small blocks run fastest on one (default: %(default)s)")
    out = p.add_argument_group("output")
    out.add_argument("--plain", action="store_true", help="one line per event (the default when stdout is not a TTY)")
    out.add_argument("--json", type=Path, metavar="FILE", help="write segments, decisions and latencies as JSON")
    out.add_argument("--screen", type=Path, metavar="FILE", help="save the final live view as text")
    p.set_defaults(run=run)


def _fail(message: str) -> int:
    print(f"streamseq mic: {message}", file=sys.stderr)
    return 2


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
        torch.set_num_threads(args.threads)
        uni = load_model(args.model_uni)
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
        screen = _drive(args, pipeline, source, title)
    finally:
        source.stop()
    if args.json is not None:
        args.json.write_text(json.dumps({"source": name, "models": {"uni": args.model_uni, "bi": None if bi is None
                                         else args.model_bi}} | pipeline.to_dict(), indent=1) + "\n")
    if args.screen is not None and screen is not None:
        args.screen.write_text(screen)
    return 0


def _drive(args: argparse.Namespace, pipeline: Any, source: Any, title: str) -> str | None:
    """Run the pipeline on its processing thread; show its events here until it ends or Ctrl-C.

    Returns the final screen as text when ``--screen`` asks for it."""
    from rich.console import Console
    from rich.live import Live

    from streamseq.apps.live_view import LiveView, PlainView

    cfg = pipeline.segmenter_config
    plain = args.plain or not sys.stdout.isatty()
    console = Console()
    window_s = 6.4 if plain else min(10.0, max(2.0, (console.width - 30) / 10))  # 0.1 s per column
    view = LiveView(title, bi=pipeline.bi is not None, window_s=window_s, onset=cfg.onset, offset=cfg.offset,
                    frame_shift_s=cfg.frame_shift_s)
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
        summary = pipeline.join()
        view.summary = summary
    finally:
        if live is not None:
            live.update(view.render(), refresh=True)
            live.stop()
    if printer is not None:
        printer.finish(summary)
    return view.export_text() if args.screen is not None else None
