"""Voice activity detection over sound files through the Python API.

    python examples/process_files.py talk.wav corpus/ [--model vad-uni|vad-bi|FILE]

The same as ``streamseq process PATH... --format table``, in a few calls: find the inputs,
load the model once, process each file in 10 s blocks (memory stays flat), print the segments.
"""

from __future__ import annotations

import argparse
import sys
import time

from streamseq.apps import ProcessOptions, discover, load_task_model, process_file
from streamseq.audio.io import AudioFileError
from streamseq.tasks import model_task


def get_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", help="sound files, folders or glob patterns")
    p.add_argument("--model", default="vad-uni", help="vad-uni, vad-bi or a checkpoint file (default: %(default)s)")
    return p.parse_args()


def main() -> int:
    args = get_args()
    files, problems = discover(args.paths)
    model = load_task_model(args.model)
    writers = model_task(model).writers  # the formats of the model's task (VAD: segments)
    options = ProcessOptions(model=args.model)  # thresholds: options.decoder, e.g. {"onset": 0.6}
    for raw, reason in problems:
        print(f"error: {raw}: {reason}", file=sys.stderr)
    ok, failed, audio = 0, len(problems), 0.0
    t0 = time.perf_counter()
    for item in files:
        try:
            result = process_file(item.path, model, options)
        except (AudioFileError, ValueError) as exc:  # unreadable, empty, truncated, not audio...
            print(f"error: {item.path}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
            failed += 1
            continue
        ok, audio = ok + 1, audio + result.duration
        print(writers.render(result.to_dict(), "table", first=ok == 1), end="")
    wall = time.perf_counter() - t0
    speed = audio / max(wall, 1e-9)
    print(f"{ok} ok, {failed} failed, {audio:.1f} s of audio, {speed:.0f}x real time", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
