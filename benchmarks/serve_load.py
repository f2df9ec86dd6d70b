"""How many real-time streams one ``streamseq serve`` worker holds: p99 event latency per stream count.

    python benchmarks/serve_load.py [--streams 50 100 200 400] [--duration 10] [--block-ms 100]
                                    [--server-cpu 0] [--client-cpu 1] [--tick-ms 20] [--json FILE]

Starts ``streamseq serve`` (one worker, pinned to --server-cpu with ``taskset`` when given), then for
each N opens N WebSocket clients on loopback; each sends the bundled recording as int16 PCM in
--block-ms blocks paced in real time (starts spread over one block) for --duration seconds, then
``{"type": "end"}``. Event latency: from sending the block that completed a frame to receiving the
``probs`` event with that frame (audio in -> event out, on one clock). A stream count holds when
p99 < --target-ms and every stream got all its frames. Prints one row per N and the largest N held.

On a shared machine the server gets only part of a core, so each row also gives the server's own
CPU time per stream-second of audio (from /proc: WebSocket frames, JSON and decoding included) and the
streams one dedicated core would hold at that cost (``1 / cpu``, before headroom), and the clients'
own CPU share over the run (near 100 % the load generator, not the server, is what runs out).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import soundfile as sf
from websockets.asyncio.client import connect

AUDIO = Path(__file__).resolve().parents[1] / "examples" / "audio" / "meeting_snippet.flac"


def get_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--streams", type=int, nargs="+", default=[50, 100, 200, 400], help="stream counts to try")
    p.add_argument("--duration", type=float, default=10.0, help="audio seconds per stream (default: %(default)s)")
    p.add_argument("--block-ms", type=int, default=100, help="client block (default: %(default)s)")
    p.add_argument("--target-ms", type=float, default=100.0, help="p99 latency target (default: %(default)s)")
    p.add_argument("--server-cpu", help="taskset CPU list for the server (default: not pinned)")
    p.add_argument("--client-cpu", help="taskset CPU list for these clients (default: not pinned)")
    p.add_argument("--bi", help="also run this bi model after each utterance (default: none)")
    p.add_argument("--tick-ms", type=float, help="the server's engine tick (default: the server's own, 20 ms)")
    p.add_argument("--json", type=Path, help="write the rows here")
    return p.parse_args()


async def client(url: str, audio: np.ndarray, block: int, delay: float, shift: int) -> tuple[list[float], int, int]:
    """One real-time stream; returns its event latencies (s), frames received and frames expected."""
    await asyncio.sleep(delay)
    sent: list[float] = []  # send time of each block
    latencies: list[float] = []
    frames = 0
    async with connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "hello", "sample_rate": 16000, "encoding": "int16", "channels": 1}))
        json.loads(await ws.recv())

        async def receive() -> None:
            nonlocal frames
            async for message in ws:
                event = json.loads(message)
                if event["type"] == "probs":
                    now = time.monotonic()
                    last = event["frame"] + len(event["p"]) - 1
                    frames += len(event["p"])
                    needed = (last + 1) * shift  # samples that complete the frame
                    index = -(-needed // block) - 1
                    if index < len(sent):  # the tail flushed at the end has no block of its own
                        latencies.append(now - sent[index])

        reader = asyncio.create_task(receive())
        start = time.monotonic()
        for i in range(0, len(audio), block):
            await asyncio.sleep(max(0.0, start + i / 16000 - time.monotonic()))
            sent.append(time.monotonic())
            await ws.send(audio[i : i + block].tobytes())
        await ws.send('{"type": "end"}')
        await reader
    return latencies, frames, len(audio) // shift


async def one_run(url: str, n: int, audio: np.ndarray, block: int) -> dict:
    rng = np.random.default_rng(n)
    results = await asyncio.gather(*(client(url, audio, block, float(rng.uniform(0, block / 16000)), 160)
                                     for _ in range(n)), return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    ok = [r for r in results if not isinstance(r, BaseException)]
    lat = np.concatenate([np.array(r[0]) for r in ok]) if ok else np.zeros(1)
    complete = sum(r[1] >= r[2] for r in ok)
    return {"streams": n, "failed": len(failed), "complete": complete, "p50_ms": float(np.percentile(lat, 50) * 1e3),
            "p99_ms": float(np.percentile(lat, 99) * 1e3), "max_ms": float(lat.max() * 1e3),
            "error": repr(failed[0]) if failed else None}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    args = get_args()
    if args.client_cpu:
        os.sched_setaffinity(0, {int(c) for c in args.client_cpu.split(",")})
    audio, rate = sf.read(AUDIO, dtype="int16")
    assert rate == 16000
    audio = np.tile(audio, int(np.ceil(args.duration * rate / len(audio))))[: int(args.duration * rate)]
    block = args.block_ms * 16
    cmd = [sys.executable, "-m", "streamseq.cli.main", "serve", "--port", "0", "--max-streams", "100000",
           "--idle-timeout", "120"] + (["--bi", args.bi] if args.bi else []) + (
           ["--tick-ms", str(args.tick_ms)] if args.tick_ms is not None else [])
    if args.server_cpu:
        cmd = ["taskset", "-c", args.server_cpu] + cmd
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if "127.0.0.1:" not in line:  # it refused its settings (its message is above) or died
            sys.exit(f"serve_load: the server did not start (exit status {server.wait(30)}); see its message above")
        port = int(line.split("127.0.0.1:")[1].split("/")[0])
        url = f"ws://127.0.0.1:{port}/ws"
        tick = f", {args.tick_ms:g} ms ticks" if args.tick_ms is not None else ""
        print(f"server: one worker{' on CPU ' + args.server_cpu if args.server_cpu else ''}{tick}; clients: "
              f"{args.duration:g} s of real-time audio each in {args.block_ms} ms blocks")
        print(f"{'streams':>7} | {'failed':>6} | {'complete':>8} | {'p50 ms':>7} | {'p99 ms':>7} | {'max ms':>7} | "
              f"{'tick p99 ms':>11} | {'server CPU ms/stream-s':>22} | {'streams/core':>12} | {'client CPU':>10}")
        rows, held = [], 0
        for n in args.streams:
            cpu0, client0 = cpu_seconds(server.pid), cpu_seconds(os.getpid())
            t0 = time.monotonic()
            row = asyncio.run(one_run(url, n, audio, block))
            row["server_cpu_per_stream_s"] = (cpu_seconds(server.pid) - cpu0) / (n * args.duration)
            row["client_cpu_share"] = (cpu_seconds(os.getpid()) - client0) / (time.monotonic() - t0)
            row["streams_per_core"] = 1 / row["server_cpu_per_stream_s"]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
                metrics = dict(line.split() for line in response.read().decode().splitlines())
            row["tick_p99_ms"] = float(metrics["streamseq_tick_seconds_p99"]) * 1e3
            rows.append(row)
            error = f"  {row['error']}" if row["error"] else ""
            print(f"{n:>7} | {row['failed']:>6} | {row['complete']:>8} | {row['p50_ms']:>7.1f} | "
                  f"{row['p99_ms']:>7.1f} | {row['max_ms']:>7.1f} | {row['tick_p99_ms']:>11.1f} | "
                  f"{row['server_cpu_per_stream_s'] * 1e3:>22.2f} | {row['streams_per_core']:>12.0f} | "
                  f"{row['client_cpu_share']:>10.0%}{error}",
                  flush=True)
            if row["failed"] == 0 and row["complete"] == n and row["p99_ms"] < args.target_ms:
                held = max(held, n)
        print(f"largest stream count held in real time with p99 < {args.target_ms:g} ms: {held or 'none'}")
        if args.json:
            args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "rows": rows,
                                             "held": held}, indent=1, default=str))
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
