"""How many live streams Engines keep up with on 1 and 2 cores, and offline throughput.

    python benchmarks/multi_stream.py [--model vad-uni|FILE] [--cores 1 2] [--streams 64 128 ...]

Live: N streams each send ``--chunk-ms`` of audio per tick (phases staggered, so streams have
different frame counts, as when they join at random moments); a tick is every stream's
``accept`` plus one ``Engine.step``. On c cores, c processes each run a single-threaded Engine
with N / c of the streams, at the same time (shards: streams are independent). N keeps up when
the p99 tick wall time over all shards is under the chunk duration; N grows until it fails
twice. (Intra-op threads instead of shards were measured slower than one thread here.)
Offline: a ``--offline-minutes`` file through features and the model exactly (state carried
across 60 s blocks): eager ``model.step`` (= forward) on one thread, and the onnx step in a
two-thread pipeline (features of block k+1 while the GRU runs block k).
Writes ``benchmarks/results/multi_stream.json``. Wall-clock figures: a loaded machine lowers them.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from streamseq.features import StreamingFrontend, compute_features
from streamseq.models import load_model
from streamseq.models.export import initial_state, step_function
from streamseq.streaming.engine import Engine, resolve_backend

RESULTS = Path(__file__).parent / "results"


def get_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vad-uni", help="shipped model name or checkpoint (default: %(default)s)")
    p.add_argument("--backend", default="auto", help="engine step backend (default: %(default)s)")
    p.add_argument("--cores", type=int, nargs="+", default=[1, 2], help="processes (one thread each)")
    p.add_argument("--streams", type=int, nargs="+", default=[64, 128, 256, 512, 768, 1024, 1536, 2048, 3072, 4096])
    p.add_argument("--chunk-ms", type=int, default=32, help="audio per stream per tick (default: %(default)s)")
    p.add_argument("--ticks", type=int, default=40, help="measured ticks per N (default: %(default)s)")
    p.add_argument("--offline-minutes", type=float, default=10.0, help="0 skips the offline figure")
    p.add_argument("--out", type=Path, default=RESULTS / "multi_stream.json")
    return p.parse_args()



def shard(model, backend: str, streams: int, chunk: int, ticks: int) -> tuple[list[float], list[float]]:
    """One process: a single-threaded Engine ticking ``streams`` staggered streams; tick wall and CPU seconds."""
    torch.set_num_threads(1)
    engine = Engine(model, backend, threads=1)
    audio = (0.05 * np.random.default_rng(0).standard_normal(16000 * 60)).astype(np.float32)
    ids = [engine.open() for _ in range(streams)]
    for sid in ids:
        engine.accept(sid, audio[: 1 + sid * 37 % chunk], sample_rate=16000)  # stagger the frame phase
    offsets = {sid: sid * 7919 % (audio.size // 2) for sid in ids}
    wall, cpu = [], []
    for k in range(ticks + 5):
        t0, c0 = time.perf_counter(), time.process_time()
        for sid in ids:
            start = offsets[sid] + k * chunk
            engine.accept(sid, audio[start : start + chunk], sample_rate=16000)
        engine.step()
        if k >= 5:  # warm-up ticks excluded
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    for sid in ids:
        engine.close(sid)
    return wall, cpu


def live(pool: ProcessPoolExecutor, model, backend: str, cores: int, streams: int, chunk: int, ticks: int) -> dict:
    """Tick times (ms) over ``cores`` concurrent shards of ``streams`` streams in all."""
    parts = np.array_split(np.arange(streams), cores)
    jobs = [pool.submit(shard, model, backend, len(part), chunk, ticks) for part in parts]
    results = [job.result() for job in jobs]
    wall_ms = 1e3 * np.concatenate([w for w, _ in results])
    cpu_ms = 1e3 * np.mean([np.mean(c) for _, c in results])
    return {"streams": streams, "p50_ms": float(np.percentile(wall_ms, 50)),
            "p99_ms": float(np.percentile(wall_ms, 99)), "max_ms": float(wall_ms.max()),
            "cpu_ms_per_tick_per_shard": float(cpu_ms)}


def offline(model, minutes: float, backend: str) -> dict:
    """Audio seconds per wall second over one file, exact (state carried across 60 s blocks)."""
    rng = np.random.default_rng(1)
    audio = (0.05 * rng.standard_normal(int(minutes * 60 * 16000))).astype(np.float32)
    seconds, block = audio.size / 16000, 60 * 16000
    results = {}

    t0 = time.perf_counter()
    with torch.inference_mode():
        feats = compute_features(audio)[None]  # (1, T, F)
        state, parts = None, []
        for i in range(0, feats.shape[1], 6000):  # model.step over 60 s blocks == model.forward
            logits, state = model.step(feats[:, i : i + 6000], state)
            parts.append(model.activate(logits))
        eager = torch.cat(parts, 1)[0].numpy()
    results["eager_step_blocks"] = seconds / (time.perf_counter() - t0)

    step = step_function(model, backend, threads=1)
    frontend = StreamingFrontend(model.feature_config)
    h = initial_state(model)

    def features(i: int | None) -> np.ndarray:  # i: first sample of a block; None: end of file
        with torch.inference_mode():
            part = frontend.accept(audio[i : i + block], sample_rate=16000) if i is not None else frontend.flush()
        return part.numpy()[None]

    t0 = time.perf_counter()
    parts, jobs = [], [*range(0, audio.size, block), None]
    with ThreadPoolExecutor(1) as pool:  # features of the next block while the GRU runs this one
        pending = pool.submit(features, jobs[0])
        for k in range(len(jobs)):
            x = pending.result()
            if k + 1 < len(jobs):
                pending = pool.submit(features, jobs[k + 1])
            if x.shape[1]:
                values, h = step(x, h)
                parts.append(values)
    piped = np.concatenate(parts, 1)[0]
    results[f"{backend}_pipelined"] = seconds / (time.perf_counter() - t0)
    results["max_abs_diff"] = float(np.abs(piped - eager).max())
    results["frames"] = int(eager.shape[0])
    return results


def main() -> None:
    args = get_args()
    model, model_name = load_model(args.model), args.model
    backend = resolve_backend(args.backend)
    chunk = 16 * args.chunk_ms
    print(f"model: {model_name}; backend {backend}; {args.chunk_ms} ms chunks; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (other jobs share them)")
    rows, best = [], {}
    with ProcessPoolExecutor(max(args.cores), mp_context=multiprocessing.get_context("spawn")) as pool:
        for cores in args.cores:
            failures = 0
            for n in args.streams:
                row = {"cores": cores, **live(pool, model, backend, cores, n, chunk, args.ticks)}
                row["keeps_up"] = row["p99_ms"] < args.chunk_ms
                rows.append(row)
                print(f"cores {cores}  streams {n:>5}  p50 {row['p50_ms']:6.1f} ms  p99 {row['p99_ms']:6.1f} ms  "
                      f"{'ok' if row['keeps_up'] else 'late'}", flush=True)
                if row["keeps_up"]:
                    best[cores] = n
                failures += not row["keeps_up"]
                if failures == 2:
                    break
    print(f"\n| cores | streams | p50 tick ms | p99 tick ms | CPU ms/tick/shard | p99 < {args.chunk_ms} ms |\n"
          "|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['cores']} | {r['streams']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
              f"{r['cpu_ms_per_tick_per_shard']:.1f} | {'yes' if r['keeps_up'] else 'no'} |")
    print("\nlargest N that keeps up: " + ", ".join(f"{best.get(c, 0)} streams on {c} core(s)" for c in args.cores))
    result = {"model": model_name, "backend": backend, "chunk_ms": args.chunk_ms, "ticks": args.ticks, "rows": rows,
              "largest_real_time": {str(c): best.get(c, 0) for c in args.cores}, "load_avg": list(os.getloadavg())}
    if args.offline_minutes > 0:
        torch.set_num_threads(1)  # the pipeline's two threads are the two cores
        off = offline(model, args.offline_minutes, backend)
        result["offline"] = {"minutes": args.offline_minutes, **off}
        print(f"\noffline, {args.offline_minutes:g} min file (x real time): eager model.step over 60 s blocks, "
              f"1 thread {off['eager_step_blocks']:.0f}x; {backend} step in a 2-thread pipeline "
              f"{off[f'{backend}_pipelined']:.0f}x (max |diff| {off['max_abs_diff']:.1e})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
