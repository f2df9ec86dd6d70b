"""Single-thread cost of one live stream: frontend + model step + the task's decoder, vs peers.

    python benchmarks/single_stream.py [--model vad-uni|FILE] [--seconds 20] [--repeats 5]

Real-time factor = process CPU seconds per audio second on 1 thread (lower is better), per
chunk size, for: the public ``Session`` (its default backend) and a one-stream ``Engine`` with
each step backend (eager torch, TorchScript, onnxruntime), every one followed by the model's
task decoder (VAD: the ``Segmenter``; digits: greedy CTC + end-of-speech); the split of the
fastest into frontend (samples -> spectrum) / step / decoder ("segmenter" in the tables);
and the peers when installed: Silero VAD (ONNX, 512-sample chunks, model call only) and WebRTC
VAD (10 and 30 ms frames), as ratios to streamseq. Runs go round-robin and the minimum of
``--repeats`` counts, so load changes hit all alike. Writes ``benchmarks/results/single_stream.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from streamseq.models import load_model
from streamseq.streaming.engine import Engine
from streamseq.streaming.session import Session
from streamseq.tasks import get_task

RESULTS = Path(__file__).parent / "results"


def get_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vad-uni", help="shipped model name or checkpoint (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=20.0, help="audio seconds per run (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=5,
                   help="runs per pipeline; the minimum counts (default: %(default)s)")
    p.add_argument("--chunks-ms", type=int, nargs="+", default=[10, 20, 32, 100])
    p.add_argument("--out", type=Path, default=RESULTS / "single_stream.json")
    return p.parse_args()



def test_audio(seconds: float) -> np.ndarray:
    """Noise with tone bursts: the segmenter sees both speech-like and silent stretches."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * 16000)) / 16000
    burst = np.sin(2 * np.pi * 0.4 * t) > 0
    return (0.02 * rng.standard_normal(t.size) + 0.3 * burst * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def decoder(model):
    """A new stream's decoder of ``model``'s task (VAD: its Segmenter over the speech column)."""
    return get_task(model.task).decoder(model)


def session_run(model, chunks):
    session, seg = Session(model), decoder(model)
    with torch.inference_mode():
        for c in chunks:
            seg.push(session.accept(c, sample_rate=16000).values)


def engine_run(engine: Engine, chunks):
    sid, seg = engine.open(), decoder(engine.model)
    for c in chunks:
        engine.accept(sid, c, sample_rate=16000)
        out = engine.step().get(sid)
        if out is not None:
            seg.push(out.values)
    engine.close(sid)


def engine_run_without_segmenter(engine: Engine, chunks):
    sid = engine.open()
    for c in chunks:
        engine.accept(sid, c, sample_rate=16000)
        engine.step()
    engine.close(sid)


def stage_runs(model, engine: Engine, chunks) -> dict:
    """The work of engine_run one stage at a time, each on the precomputed input of its stage."""
    from streamseq.features import StreamingFrontend
    from streamseq.models.export import initial_state

    frontend = StreamingFrontend(model.feature_config)
    spectra = [engine._spectrum([frontend.accept_windows(c, sample_rate=16000)])[None] for c in chunks]
    h0 = initial_state(model)
    n_out = model.config.n_outputs
    values = [engine._step(x, h0)[0][0] if x.shape[1] else np.zeros((0, n_out), np.float32) for x in spectra]

    def frontend_only():
        fe = StreamingFrontend(model.feature_config)
        for c in chunks:
            engine._spectrum([fe.accept_windows(c, sample_rate=16000)])

    def step_only():
        h = h0
        for x in spectra:
            if x.shape[1]:
                _, h = engine._step(x, h)

    def segmenter_only():
        seg = decoder(model)
        for v in values:
            seg.push(v)

    return {"frontend": frontend_only, "step": step_only, "segmenter": segmenter_only}


def silero_run(silero, chunks512):
    silero.reset_states()
    for c in chunks512:
        silero(torch.from_numpy(c), 16000)  # speech probability of the 32 ms chunk


def webrtc_run(audio: np.ndarray, ms: int):
    import webrtcvad

    vad, size = webrtcvad.Vad(2), 16 * ms
    for i in range(0, audio.size - size + 1, size):
        vad.is_speech((audio[i : i + size] * 32767).astype(np.int16).tobytes(), 16000)


def cpu_seconds(runs: dict, repeats: int) -> dict[str, float]:
    """Minimum process CPU time of each run; repeats go round-robin over the runs."""
    best = {name: float("inf") for name in runs}
    for fn in runs.values():
        fn()  # warm-up
    for _ in range(repeats):
        for name, fn in runs.items():
            t0 = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - t0)
    return best


def main() -> None:
    args = get_args()
    torch.set_num_threads(1)
    model, model_name = load_model(args.model), args.model
    audio = test_audio(args.seconds)
    seconds = audio.size / 16000
    has = {m: importlib.util.find_spec(m) is not None for m in ("onnxruntime", "silero_vad", "webrtcvad")}
    engines = {b: Engine(model, b, threads=1) for b in ["eager", "torchscript"] + ["onnx"] * has["onnxruntime"]}
    silero = None
    if has["silero_vad"]:
        from silero_vad import load_silero_vad

        silero = load_silero_vad(onnx=True)  # onnxruntime, 1 intra-op thread
    print(f"model: {model_name} ({model.config.num_layers}x{model.config.hidden_size}), {seconds:.0f} s of audio, "
          f"1 thread, RTF = CPU s per audio s (min of {args.repeats}); load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    rows, peers = [], {}
    for ms in args.chunks_ms:
        size = 16 * ms
        chunks = [audio[i : i + size] for i in range(0, audio.size - size + 1, size)]
        runs = {"session": partial(session_run, model, chunks)}
        runs.update({f"engine_{b}": partial(engine_run, e, chunks) for b, e in engines.items()})
        if ms == 32:  # like for like with the peers, which have no segmenter
            fastest = engines["onnx" if "onnx" in engines else "eager"]
            runs["streamseq_without_segmenter_32ms"] = partial(engine_run_without_segmenter, fastest, chunks)
        if ms == 32 and silero is not None:
            silero_chunks = [audio[i : i + 512] for i in range(0, audio.size - 511, 512)]
            runs["silero_onnx_32ms"] = partial(silero_run, silero, silero_chunks)
        if ms in (10, 32) and has["webrtcvad"]:
            frame = 10 if ms == 10 else 30
            runs[f"webrtc_{frame}ms"] = lambda frame=frame: webrtc_run(audio, frame)
        times = {k: v / seconds for k, v in cpu_seconds(runs, args.repeats).items()}
        peers.update({k: v for k, v in times.items() if k.startswith(("silero", "webrtc", "streamseq_"))})
        row = {"chunk_ms": ms, **{k: v for k, v in times.items() if k not in peers}}
        best = min(engines, key=lambda b: row[f"engine_{b}"])
        row["best"] = f"engine_{best}"
        stages = cpu_seconds(stage_runs(model, engines[best], chunks), args.repeats)
        row["stages"] = {k: v / seconds for k, v in stages.items()}
        rows.append(row)

    cols = ["session"] + [f"engine_{b}" for b in engines]
    print("\n| chunk | " + " | ".join(cols) + " | fastest, by stage: frontend / step / segmenter |")
    print("|---:|" + "---:|" * len(cols) + "---|")
    for r in rows:
        s = r["stages"]
        print(f"| {r['chunk_ms']} ms | " + " | ".join(f"{r[c]:.5f}" for c in cols)
              + f" | {r['best']}: {s['frontend']:.5f} / {s['step']:.5f} / {s['segmenter']:.5f} |")
    ours = {r["chunk_ms"]: min(r[c] for c in cols) for r in rows}
    bare = peers.pop("streamseq_without_segmenter_32ms", None)
    if peers:
        print("\n| peer | RTF | peer RTF / streamseq RTF at the same chunk: with segmenter, without |\n|---|---:|---:|")
        for name, rtf in peers.items():
            ms = {"silero_onnx_32ms": 32, "webrtc_10ms": 10, "webrtc_30ms": 32}[name]
            without = f" / {rtf / bare:.2f}x" if ms == 32 and bare else ""
            print(f"| {name} | {rtf:.5f} | {rtf / ours[ms]:.2f}x{without} (streamseq at {ms} ms) |")
    if bare is not None:
        print(f"streamseq at 32 ms without the segmenter: RTF {bare:.5f}")
    missing = [m for m in ("silero_vad", "webrtcvad") if not has[m]]
    if missing:
        print(f"[note] peers not installed: {', '.join(missing)} (pip install 'streamseq[peers]')")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "model": model_name, "seconds": seconds, "threads": 1, "repeats": args.repeats,
        "unit": "process CPU seconds per audio second (RTF)", "rows": rows, "peers": peers,
        "streamseq_without_segmenter_32ms": bare,
        "machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                    "load_avg": list(os.getloadavg())},
    }, indent=1) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
