"""Live VAD from a microphone: a streaming uni-GRU next to a buffered bi-GRU.

The uni model answers every 10 ms frame as soon as its audio has arrived. The bi model
needs the whole utterance, so it buffers audio from the moment the uni model hears speech
and answers only when the uni model decides that the utterance ended. Times are stream
time (seconds of audio consumed). `streamseq mic` is the full version, with a live view.

    python examples/live_mic_demo.py                      # default microphone, Ctrl-C to stop
    python examples/live_mic_demo.py --input talk.wav     # a file, played in real time
"""

from __future__ import annotations

import argparse
from collections import deque

import numpy as np
import torch

import streamseq
from streamseq.audio.source import FileSource, MicrophoneSource
from streamseq.tasks.vad.postprocess import Segmenter, segments_from_probs


def get_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", help="input device index or name (default: the default input)")
    p.add_argument("--input", help="play this sound file instead of the microphone")
    p.add_argument("--fast", action="store_true", help="with --input: do not pace in real time")
    p.add_argument("--seconds", type=float, default=None, help="stop after this much audio (default: never)")
    p.add_argument("--model-uni", default="vad-uni", help="streaming model (default: %(default)s)")
    p.add_argument("--model-bi", default="vad-bi", help="bidirectional model (default: %(default)s)")
    return p.parse_args()


def main() -> None:
    args = get_args()
    torch.set_num_threads(1)  # 50 ms blocks are tiny: one thread beats thread start-up overhead
    uni, bi = streamseq.load_model(args.model_uni), streamseq.load_model(args.model_bi)
    session = streamseq.Session(uni)  # per-stream state; the model itself stays stateless
    segmenter = Segmenter()  # the same incremental post-processor that offline tools use
    recent: deque[np.ndarray] = deque(maxlen=40)  # the last 40 blocks (2 s), to start bi early
    samples = origin = 0  # stream samples consumed; stream sample where the bi buffer starts
    listening: streamseq.BufferedProcessor | None = None  # the bi model, while it buffers an utterance

    def on_events(events: list, rate: int) -> None:
        nonlocal origin, listening
        now = samples / rate
        for event in events:
            decided = (event.frame + uni.config.output_delay) * session.frame_shift_s  # stream time
            if event.kind == "start":
                print(f"{decided:6.2f}s  uni: speech since {event.time:.2f}s (+{decided - event.time:.2f}s)")
                history = np.concatenate(recent)  # bi gets the audio from 0.5 s before the start
                first = samples - len(history)
                origin = max(first, round((event.time - 0.5) * rate))
                listening = streamseq.BufferedProcessor(bi)
                listening.accept(history[origin - first :], rate)
            elif event.segment is not None:
                seg = event.segment
                print(f"{decided:6.2f}s  uni: segment {seg.start:.2f}-{seg.end:.2f}s, "
                      f"closed {decided - seg.end:.2f}s after its end")
                if listening is not None:  # bi: every frame of the utterance at once, only now
                    probs, shift = listening.finish().values[:, 0], origin / rate
                    spans = [f"{s.start + shift:.2f}-{s.end + shift:.2f}s" for s in segments_from_probs(probs)]
                    print(f"{now:6.2f}s  bi:  {', '.join(spans) or 'no speech'} "
                          f"(waited {now - seg.end:.2f}s after the end, held {now - shift:.1f}s of audio)")
                    listening = None

    if args.input:
        source = FileSource(args.input, block_s=0.05, realtime=not args.fast)
    else:
        source = MicrophoneSource(args.device, block_s=0.05)
    with source:
        rate = source.sample_rate
        try:
            while (block := source.read(timeout=1.0)) is not None or source.active:
                if block is None:
                    continue
                recent.append(block)
                samples += len(block)
                if listening is not None:
                    listening.accept(block, rate)
                out = session.accept(block, rate)  # uni: probabilities of the frames just completed
                on_events(segmenter.push(out.values[:, 0]), rate)
                if args.seconds is not None and samples >= args.seconds * rate:
                    break
        except KeyboardInterrupt:
            pass
    on_events(segmenter.push(session.finish().values[:, 0]) + segmenter.flush(), rate)  # end of stream
    print(f"stopped after {samples / rate:.1f}s of audio")


if __name__ == "__main__":
    main()
