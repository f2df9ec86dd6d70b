"""Single-thread cost of the streaming frontend + StreamingRNN.step per second of audio.

    python benchmarks/frontend_step.py [--model vad-uni|FILE] [--seconds 20]

Prints the real-time factor (CPU seconds per audio second; lower is better) for chunk sizes
of 10, 32 and 100 ms, split into frontend and model step.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from streamseq.features import StreamingFrontend
from streamseq.models import load_model


def get_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vad-uni", help="shipped model name or checkpoint (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=20.0, help="audio seconds per measurement (default: %(default)s)")
    p.add_argument("--chunks-ms", type=int, nargs="+", default=[10, 32, 100])
    return p.parse_args()


def main() -> None:
    args = get_args()
    torch.set_num_threads(1)
    model = load_model(args.model)
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(int(args.seconds * 16000))).astype(np.float32)
    print(f"model: {args.model} ({model.config.num_layers}x{model.config.hidden_size} {model.config.kind}), "
          f"{args.seconds:.0f} s of audio, 1 thread")
    print(f"{'chunk':>7} | {'frontend RTF':>12} | {'GRU step RTF':>12} | {'total RTF':>10} | {'us/chunk':>9}")
    for ms in args.chunks_ms:
        size = 16 * ms
        chunks = [audio[i : i + size] for i in range(0, audio.size - size + 1, size)]
        frontend, state = StreamingFrontend(model.feature_config), None
        t_front = t_model = 0.0
        with torch.inference_mode():
            for c in chunks:
                t0 = time.perf_counter()
                frames = frontend.accept(c, sample_rate=16000)
                t1 = time.perf_counter()
                if frames.shape[0]:
                    _, state = model.step(frames[None], state)
                t_model += time.perf_counter() - t1
                t_front += t1 - t0
        seconds = len(chunks) * size / 16000
        total = (t_front + t_model) / seconds
        print(f"{ms:>5}ms | {t_front / seconds:>12.5f} | {t_model / seconds:>12.5f} | {total:>10.5f} | "
              f"{(t_front + t_model) / len(chunks) * 1e6:>9.1f}")


if __name__ == "__main__":
    main()
