"""Live VAD from a microphone: a streaming uni-GRU next to a buffered bi-GRU.

The uni model answers every 10 ms frame as soon as its audio has arrived. The bi model
needs the whole utterance, so it buffers audio from the moment the uni model hears speech
and answers only when the uni model decides that the utterance ended. Times are stream
time (seconds of audio consumed). This is the pipeline `streamseq mic` runs (LivePipeline),
with one printed line per decision instead of its live view.

    python examples/live_mic_demo.py                      # default microphone, Ctrl-C to stop
    python examples/live_mic_demo.py --input talk.wav     # a file, played in real time
"""

from __future__ import annotations

import argparse
import sys

import torch

import streamseq
from streamseq.apps.live import BiDecision, LiveEvent, LivePipeline, SpeechStart, UniSegment
from streamseq.audio.devices import NoInputDeviceError, PortAudioUnavailableError
from streamseq.audio.source import FileSource, MicrophoneSource


def get_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", help="input device index or name (default: the default input)")
    p.add_argument("--input", help="play this sound file instead of the microphone")
    p.add_argument("--fast", action="store_true", help="with --input: do not pace in real time")
    p.add_argument("--seconds", type=float, default=None, help="stop after this much audio (default: never)")
    p.add_argument("--model-uni", default="vad-uni", help="streaming model (default: %(default)s)")
    p.add_argument("--model-bi", default="vad-bi", help="bidirectional model (default: %(default)s)")
    return p.parse_args()


def show(event: LiveEvent) -> None:
    """One line per decision, at the stream time it was made (block updates are not printed)."""
    if isinstance(event, SpeechStart):  # provisional: the segment may still be dropped as too short
        print(f"{event.decided_s:6.2f}s  uni: speech since {event.start_s:.2f}s (+{event.latency_s:.2f}s)")
    elif isinstance(event, UniSegment):
        closed = "by the end of the stream" if event.at_stream_end else f"{event.end_latency_s:.2f}s after its end"
        print(f"{event.end_decided_s:6.2f}s  uni: segment {event.start_s:.2f}-{event.end_s:.2f}s, closed {closed}")
    elif isinstance(event, BiDecision):  # every frame of the utterance at once, only now
        spans = ", ".join(f"{s.start:.2f}-{s.end:.2f}s" for s in event.segments) or "no speech"
        print(f"{event.decided_s:6.2f}s  bi:  {spans} (waited {event.wait_s:.2f}s after the end, "
              f"held {event.held_s:.1f}s of audio)")


def main() -> int:
    args = get_args()
    torch.set_num_threads(1)  # 50 ms blocks are tiny: one thread beats thread start-up overhead
    uni, bi = streamseq.load_model(args.model_uni), streamseq.load_model(args.model_bi)
    pipeline = LivePipeline(uni, bi)  # one Session per stream; the models themselves stay stateless
    if args.input:
        source = FileSource(args.input, block_s=0.05, realtime=not args.fast)
    else:
        source = MicrophoneSource(args.device, block_s=0.05)
    try:
        with source:
            pipeline.start(source, duration_s=args.seconds, on_event=show)  # a processing thread; show() runs on it
            try:
                summary = pipeline.join()
            except KeyboardInterrupt:
                pipeline.stop()  # the processing thread finishes the stream: open utterances get their answers
                summary = pipeline.join()
    except (PortAudioUnavailableError, NoInputDeviceError) as exc:  # no microphone here: the message says what to do
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"stopped after {summary.stream_s:.1f}s of audio; real-time factor {summary.rtf:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
