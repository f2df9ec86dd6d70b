"""Regenerate the bundled example recording ``examples/audio/meeting_snippet.flac``.

Three espeak-ng phrases (two voices) at known times over pink noise and mains hum, 16 kHz mono.
The speech regions are printed so the demo output can be checked by eye.

    .venv/bin/python scripts/make_example_audio.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from streamseq.data.sources import hum, pink_noise, to_mono_16k
from streamseq.data.tts import list_voices, synthesize

PHRASES = [  # (start seconds, espeak voice, text)
    (1.0, "en-us+Michael", "Good morning everyone, let's get started with the weekly review."),
    (6.5, "en-gb+belinda", "The numbers for October look better than expected."),
    (11.0, "en-us+david", "Thank you. Any questions before we move on?"),
]
DURATION_S = 15.0
OUT = Path(__file__).resolve().parents[1] / "examples" / "audio" / "meeting_snippet.flac"


def main() -> None:
    rng = np.random.default_rng(7)
    voices = {v.name: v for v in list_voices(("espeak",))}
    audio = 0.01 * pink_noise(rng, DURATION_S) + 0.005 * hum(rng, DURATION_S)
    for start, voice, text in PHRASES:
        speech, rate = synthesize(voices[voice], text, rng)
        speech = 0.3 * to_mono_16k(speech, rate) / np.abs(speech).max()
        i = int(start * 16000)
        audio[i : i + speech.size] += speech[: audio.size - i]
        print(f"{start:5.2f} - {start + speech.size / 16000:5.2f} s  {text}")
    sf.write(OUT, audio.astype(np.float32), 16000, subtype="PCM_16")
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
