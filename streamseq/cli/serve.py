"""``streamseq serve``: live VAD (or digits) over WebSockets for many streams (see :mod:`streamseq.apps.serve`).

One process is one worker: one Engine steps all its streams. ``--workers N`` starts N worker
processes on one port (SO_REUSEPORT: the kernel spreads new connections over them, and a
WebSocket stays with the worker that accepted it). Exit status: 0 after a clean shutdown
(SIGINT/SIGTERM flush every stream's final segment); 2 bad arguments or models.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import signal
import sys
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="live VAD or digits over WebSockets: many streams, one batched engine per worker",
                       description="Serve live VAD (or digit recognition, with digits models): one WebSocket per "
                                   "stream at /ws (JSON hello, then binary PCM frames; JSON events back), a browser "
                                   "page at /, /healthz and /metrics.")
    p.add_argument("--model", default="vad-uni", metavar="M", help="streaming model (default: %(default)s)")
    p.add_argument("--bi", metavar="M", help="buffered model run after each utterance, e.g. vad-bi (default: none)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port; 0 picks a free one (default: %(default)s)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="worker processes (default: %(default)s)")
    lim = p.add_argument_group("limits (per worker)")
    lim.add_argument("--max-streams", type=int, default=1000, metavar="N", help="open streams (default: %(default)s)")
    lim.add_argument("--max-frame-bytes", type=int, default=1 << 16, metavar="B",
                     help="largest message (default: %(default)s)")
    lim.add_argument("--max-messages-per-s", type=float, default=200.0, metavar="R",
                     help="messages per second per stream (default: %(default)s)")
    lim.add_argument("--idle-timeout", type=float, default=30.0, metavar="S",
                     help="close a stream silent this long (default: %(default)s)")
    lim.add_argument("--max-queue-s", type=float, default=2.0, metavar="S",
                     help="audio a stream may have waiting for a tick (default: %(default)s)")
    lim.add_argument("--overflow", choices=("block", "drop"), default="block",
                     help="past --max-queue-s: stop reading that client, or drop its audio (default: %(default)s)")
    lim.add_argument("--max-pending-events", type=int, default=2000, metavar="N",
                     help="events waiting for a client that does not read before it is closed (default: %(default)s)")
    lim.add_argument("--tick-ms", type=float, default=20.0, metavar="MS", help="engine tick (default: %(default)s)")
    p.set_defaults(run=run)


def _config(args: argparse.Namespace) -> Any:
    from streamseq.apps.serve import ServeConfig

    return ServeConfig(max_streams=args.max_streams, max_frame_bytes=args.max_frame_bytes,
                       max_messages_per_s=args.max_messages_per_s, idle_timeout_s=args.idle_timeout,
                       tick_s=args.tick_ms / 1000, max_queue_s=args.max_queue_s, overflow=args.overflow,
                       max_pending_events=args.max_pending_events)


def worker(args: argparse.Namespace, reuse_port: bool) -> int:
    import torch

    from streamseq.apps.process_files import load_task_model
    from streamseq.apps.serve import StreamServer

    torch.set_num_threads(1)
    try:
        config = _config(args)
        uni = load_task_model(args.model)
        bi = load_task_model(args.bi) if args.bi else None
        server = StreamServer(uni, bi, config, names=(args.model, args.bi))
    except (ValueError, FileNotFoundError) as exc:
        print(f"streamseq serve: {exc}", file=sys.stderr)
        return 2
    gc.freeze()  # modules and models live as long as the worker: later collections skip them

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        def ready(port: int) -> None:
            print(f"streamseq serve: listening on http://{args.host}:{port}/ (WebSocket /ws; model {args.model}"
                  f"{', bi ' + args.bi if args.bi else ''})", flush=True)

        await server.run(args.host, args.port, stop, reuse_port=reuse_port, on_ready=ready)
        print(f"streamseq serve: stopped after {server.streams_total} streams, {server.ticks} ticks", flush=True)

    asyncio.run(main())
    return 0


def run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        print(f"streamseq serve: --workers must be >= 1; received {args.workers}", file=sys.stderr)
        return 2
    if args.workers == 1:
        return worker(args, reuse_port=False)
    if args.port == 0:
        print("streamseq serve: --workers > 1 needs a fixed --port (they share it)", file=sys.stderr)
        return 2
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=worker, args=(args, True), daemon=False) for _ in range(args.workers)]
    for proc in procs:
        proc.start()

    def terminate(*_: object) -> None:  # each worker flushes its streams
        for proc in procs:
            proc.terminate()

    signal.signal(signal.SIGTERM, terminate)
    try:
        for proc in procs:
            proc.join()
    except KeyboardInterrupt:  # the workers got the SIGINT too
        for proc in procs:
            proc.join()
    return max((p.exitcode or 0) for p in procs)
