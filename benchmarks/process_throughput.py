"""Throughput and peak memory of ``streamseq process`` on long files.

    python benchmarks/process_throughput.py [--minutes 10] [--hours 2] [--threads 1 2]
        [--uni vad-uni] [--bi vad-bi] [--jobs-files 0]

1. Speed: one generated file of ``--minutes`` (16 kHz mono FLAC) through ``process_file`` (the
   function the CLI runs) for each model and each ``--threads`` count, as audio seconds per
   wall second (x real time), split into decoding + features and the model + segmenter.
2. Memory: peak RSS of the real CLI (default settings: 1 torch thread) in a fresh process on
   a 10 s file and on a generated ``--hours`` FLAC: flat memory means the rows are about equal.
   The child reads its own high-water mark (``VmHWM``, Linux) because ``ru_maxrss`` of a child
   started by fork + exec also counts the parent's pages at fork time; ``getrusage`` is the
   fallback elsewhere.
3. Optional (``--jobs-files N``): N copies of the speed file with ``--jobs 2 --threads 1``.

A model that is not built yet (``streamseq/pretrained/*.pt`` missing) is replaced by a random
model of the default size (2 x 64 GRU), which costs the same.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from streamseq.apps import ProcessOptions, process_file
from streamseq.audio.io import iter_blocks
from streamseq.features import StreamingFrontend
from streamseq.models import load_model


def get_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0, help="length of the speed file (default: %(default)s)")
    p.add_argument("--hours", type=float, default=2.0, help="length of the memory file (default: %(default)s)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads (default: %(default)s)")
    p.add_argument("--uni", default="vad-uni", help="uni model (default: %(default)s)")
    p.add_argument("--bi", default="vad-bi", help="bi model (default: %(default)s)")
    p.add_argument("--jobs-files", type=int, default=0, help="also time N files with --jobs 2 (default: off)")
    p.add_argument("--rss-of", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)  # internal: run the CLI, print RSS
    return p.parse_args()


def write_long(path: Path, seconds: float, rate: int = 16000, block_s: float = 60.0) -> Path:
    """Speech-like bursts in noise, written block by block (never held in memory)."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", rate, 1, format="FLAC", subtype="PCM_16") as f:
        done = 0
        while done < seconds * rate:
            n = int(min(block_s * rate, seconds * rate - done))
            t = (done + np.arange(n)) / rate
            burst = (np.sin(2 * np.pi * 0.15 * t) > 0.2) * np.sin(2 * np.pi * (180 + 40 * np.sin(3 * t)) * t)
            f.write((0.01 * rng.standard_normal(n) + 0.3 * burst).astype(np.float32))
            done += n
    return path



def speed(path: Path, model_name: str) -> tuple[float, float, float]:
    """(audio s, wall s of the whole process_file, wall s of reading + features alone)."""
    model = load_model(model_name)
    t0 = time.perf_counter()
    result = process_file(path, model, ProcessOptions(model=model_name))
    wall = time.perf_counter() - t0
    frontend, t0 = StreamingFrontend(model.feature_config), time.perf_counter()
    for block in iter_blocks(path, 10.0):
        frontend.accept(block, sample_rate=16000)
    return result.duration, wall, time.perf_counter() - t0


def high_water_kb() -> int:
    """Peak resident memory of this process in KB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_rss_mb(cli_args: list[str]) -> tuple[float, float]:
    """Peak RSS (MB) and wall time of ``streamseq process ARGS`` in a fresh process."""
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, __file__, "--rss-of", *cli_args], capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(run.stderr)
    return json.loads(run.stdout.splitlines()[-1])["maxrss_kb"] / 1024, time.perf_counter() - t0


def main() -> None:
    args = get_args()
    if args.rss_of is not None:
        from streamseq.cli.main import main as cli

        code = cli(["process", *args.rss_of]) if args.rss_of else 0  # no arguments: baseline
        print(json.dumps({"maxrss_kb": high_water_kb(), "rc": code}))
        sys.exit(code)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        models = {"uni": (args.uni, args.uni), "bi": (args.bi, args.bi)}
        long = write_long(tmp / "speed.flac", args.minutes * 60)
        print(f"speed: one {args.minutes:g} min 16 kHz FLAC through process_file")
        print(f"{'model':<44} | {'threads':>7} | {'x real time':>11} | {'read+features':>13} | {'model+segmenter':>15}")
        for name, label in models.values():
            for threads in args.threads:
                torch.set_num_threads(threads)
                audio, wall, front = speed(long, name)
                print(f"{label:<44} | {threads:>7} | {audio / wall:>11.0f} | {audio / front:>12.0f}x | "
                      f"{audio / max(wall - front, 1e-9):>14.0f}x")
        short = write_long(tmp / "short.flac", 10.0)
        huge = write_long(tmp / "huge.flac", args.hours * 3600)
        print("\nmemory: real CLI in a fresh process, default settings, peak RSS")
        print(f"{'model':<44} | {'file':>9} | {'peak RSS':>9} | {'wall':>8}")
        rss = json.loads(subprocess.run([sys.executable, __file__, "--rss-of"], capture_output=True,
                                        text=True).stdout.splitlines()[-1])["maxrss_kb"] / 1024
        print(f"{'(python + torch + streamseq imported, idle)':<44} | {'-':>9} | {rss:>6.0f} MB | {'-':>8}")
        for kind, (name, label) in models.items():
            for path, what in ((short, "10 s"), (huge, f"{args.hours:g} h")):
                out = tmp / f"out-{kind}-{path.stem}"
                rss, wall = peak_rss_mb([str(path), "--model", name, "--out", str(out), "--quiet"])
                print(f"{label:<44} | {what:>9} | {rss:>6.0f} MB | {wall:>6.1f} s")
        if args.jobs_files:
            folder = tmp / "many"
            folder.mkdir()
            for i in range(args.jobs_files):
                (folder / f"f{i}.flac").symlink_to(long)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "streamseq.cli.main", "process", str(folder), "--model",
                            models["uni"][0], "--out", str(tmp / "out-many"), "--jobs", "2", "--quiet"],
                           check=True, capture_output=True)
            wall = time.perf_counter() - t0
            print(f"\n{args.jobs_files} x {args.minutes:g} min, --jobs 2 --threads 1 (uni, incl. start-up): "
                  f"{args.jobs_files * args.minutes * 60 / wall:.0f}x real time")


if __name__ == "__main__":
    main()
