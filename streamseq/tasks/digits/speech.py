"""Groups of digit words spoken with the time of each word: the TTS engines' own word timing, or the
recorded asterisk digits.

A group ("four one five") is one utterance. :func:`say` returns its audio (16 kHz mono float32)
and one ``(start, end)`` span in seconds per word, from where each engine says its words are:

* espeak-ng: the word events of libespeak-ng (the sample where each word starts), synthesized
  through the library with the parameters the ``espeak-ng`` command line sets, in a fresh process
  per utterance as the command runs (the same samples, without the command's trailing silence).
  A word ends where the next starts, pulled back to the last energy-labelled speech frame
  (:func:`streamseq.data.labels.speech_labels`) before it.
* flite: the segment end times of ``flite -psdur``, grouped into words by each word's phone
  count (``flite -ps`` on the word alone; only the count is taken from it, never audio).
* festival: the ``word_start`` / ``word_end`` of its Word relation.
* asterisk (one woman, Allison, of ``asterisk-core-sounds-en-wav``): the isolated recordings
  ``digits/0.wav`` ... ``9.wav`` and ``oh.wav``, each cut to its speech (+-20 ms) and joined with
  0-120 ms gaps, the way an IVR says digits; the spans are exact.

When an engine's words cannot be matched to the text (a count differs), the group's speech
frames are split evenly and the spans are marked ``"approximate"``.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from streamseq.data.labels import HOP_S, speech_labels
from streamseq.data.sources import SR, load_audio, to_mono_16k
from streamseq.data.tts import TTSError, TTSUnavailableError, Voice
from streamseq.debian import MissingSystemFileError, locate

__all__ = ["WORDS", "Spoken", "draw_params", "say", "say_human", "human_digits", "resampled"]

#: The words a digit is said as ("0": "zero" or "oh").
WORDS = {"0": ("zero", "oh"), "1": ("one",), "2": ("two",), "3": ("three",), "4": ("four",), "5": ("five",),
         "6": ("six",), "7": ("seven",), "8": ("eight",), "9": ("nine",)}
_TIMEOUT_S = 120
_EDGE_S = 0.02  # speech kept before and after each asterisk recording's speech
_HUMAN_GAP_S = (0.0, 0.12)


@dataclass(frozen=True)
class Spoken:
    """One group: ``audio`` (N,) float32 at 16 kHz, its speech ``labels`` (ceil(N/160),) uint8, and a
    ``(start, end)`` span (s) per word; ``timing`` says where the spans come from (``"engine"``,
    ``"recording"`` or ``"approximate"``)."""

    audio: np.ndarray
    labels: np.ndarray
    spans: list[tuple[float, float]]
    timing: str


def draw_params(voice: Voice, rng: np.random.Generator) -> dict[str, Any]:
    """The engine settings of one speaker's turn, drawn from the ``voice.params`` ranges as
    :func:`~streamseq.data.tts.synthesize` draws them (espeak integers, others floats)."""
    out = {}
    for key, value in sorted(voice.params.items()):
        if key in ("speed_wpm", "pitch", "amplitude", "duration_stretch"):
            lo, hi = value if isinstance(value, tuple) else (value, value)
            espeak = voice.engine == "espeak"
            out[key] = int(rng.integers(lo, hi + 1)) if espeak else round(float(rng.uniform(lo, hi)), 3)
    return out


def say(voice: Voice, words: list[str], params: dict[str, Any]) -> Spoken:
    """``words`` said by ``voice`` as one utterance with ``params`` (:func:`draw_params`)."""
    text = " ".join(words)
    speak = {"espeak": _espeak, "flite": _flite, "festival": _festival}[voice.engine]
    audio, sr, spans = speak(voice, text, params)
    audio = to_mono_16k(audio, sr)
    if audio.size < 0.1 * SR or float(np.abs(audio).max(initial=0)) < 1e-3:
        raise TTSError(f"{voice.engine} voice {voice.name!r} said {text!r} as {audio.size / SR:.2f} s of "
                       "(nearly) silent audio")
    labels = speech_labels(audio)
    if spans is None or len(spans) != len(words):
        return Spoken(audio, labels, _even_spans(labels, len(words)), "approximate")
    if voice.engine == "espeak":  # onsets only: ends pulled back to the last speech frame before the next onset
        spans = _trim_to_speech(spans, labels)
    return Spoken(audio, labels, spans, "engine")


# ----------------------------------------------------------------------------- espeak-ng (library)
def _run(cmd: list[str], what: str) -> str:
    """The stdout of ``cmd``; TTSError naming ``what`` when it fails or hangs."""
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise TTSError(f"{what} ran longer than {_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        raise TTSError(f"{what} failed with exit code {proc.returncode}: {proc.stderr.decode(errors='replace')[-300:]}")
    return proc.stdout.decode(errors="replace")


def _espeak(voice: Voice, text: str, params: dict) -> tuple[np.ndarray, int, list[tuple[float, float]] | None]:
    """Through :mod:`streamseq.tasks.digits.espeak_words`, a fresh process per utterance."""
    try:
        library = locate("libespeak-ng")
    except MissingSystemFileError as exc:
        raise TTSUnavailableError(f"espeak: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="streamseq-digits-") as tmp:
        wav = Path(tmp) / "out.wav"
        out = _run([sys.executable, "-I", "-S", str(Path(__file__).with_name("espeak_words.py")), str(library),
                    voice.name, str(params["speed_wpm"]), str(params["pitch"]), str(params["amplitude"]), str(wav),
                    text], f"espeak voice {voice.name!r}")
        audio, sr = sf.read(wav, dtype="float32", always_2d=False)
    # text position (1-based) -> sample of its first word event; the library also reports one at 0 at times
    events = [line.split() for line in out.splitlines()]
    found = {int(position): int(sample) for position, sample in reversed(events)}
    starts = [found.get(m.start() + 1) for m in re.finditer(r"\S+", text)]  # the words of text
    if None in starts:
        return audio, int(sr), None
    onsets = [s / sr for s in starts if s is not None] + [audio.size / sr]
    return audio, int(sr), [(a, b) for a, b in zip(onsets[:-1], onsets[1:], strict=True)]


# ----------------------------------------------------------------------------- flite
@functools.cache
def _flite_phones(name: str, word: str) -> int:
    """How many phones (pauses aside) flite voice ``name`` says ``word`` with."""
    out = _run([str(locate("flite")), "-voice", name, "-ps", "-t", word, "none"], f"flite voice {name!r}")
    return sum(1 for p in out.split() if p != "pau")


def _flite(voice: Voice, text: str, params: dict) -> tuple[np.ndarray, int, list[tuple[float, float]] | None]:
    with tempfile.TemporaryDirectory(prefix="streamseq-digits-") as tmp:
        txt, wav = Path(tmp) / "in.txt", Path(tmp) / "out.wav"
        txt.write_text(text + "\n")
        out = _run([str(locate("flite")), "-voice", voice.name, "--setf",
                    f"duration_stretch={params['duration_stretch']:.3f}", "-psdur", "-f", str(txt), "-o", str(wav)],
                   f"flite voice {voice.name!r}")
        audio, sr = sf.read(wav, dtype="float32", always_2d=False)
    phones = [(p, float(t)) for p, t in (item.rsplit(":", 1) for item in out.split())]
    spans, k, previous_end = [], 0, 0.0
    for word in text.split():
        while k < len(phones) and phones[k][0] == "pau":
            previous_end, k = phones[k][1], k + 1
        count = _flite_phones(voice.name, word)
        if k + count > len(phones):
            return audio, int(sr), None
        spans.append((previous_end, phones[k + count - 1][1]))
        previous_end, k = phones[k + count - 1][1], k + count
    return audio, int(sr), spans if all(p == "pau" for p, _ in phones[k:]) else None


# ----------------------------------------------------------------------------- festival
def _festival(voice: Voice, text: str, params: dict) -> tuple[np.ndarray, int, list[tuple[float, float]] | None]:
    with tempfile.TemporaryDirectory(prefix="streamseq-digits-") as tmp:
        wav, words, script = Path(tmp) / "out.wav", Path(tmp) / "words.txt", Path(tmp) / "say.scm"
        script.write_text(
            f"(voice_{voice.name})\n(Parameter.set 'Duration_Stretch {params['duration_stretch']:.3f})\n"
            f'(set! utt (utt.synth (Utterance Text "{text}")))\n(utt.save.wave utt "{wav}" \'riff)\n'
            f'(set! out (fopen "{words}" "w"))\n'
            '(mapcar (lambda (w) (format out "%s %s\\n" (item.feat w "word_start") (item.feat w "word_end")))\n'
            "        (utt.relation.items utt 'Word))\n(fclose out)\n")
        _run([str(locate("festival-interpreter")), "--batch", str(script)], f"festival voice {voice.name!r}")
        if not wav.is_file():
            raise TTSError(f"festival voice {voice.name!r} wrote no audio for {text!r}")
        audio, sr = sf.read(wav, dtype="float32", always_2d=False)
        spans = [(float(a), float(b)) for a, b in (line.split() for line in words.read_text().splitlines())]
    return audio, int(sr), spans


# ----------------------------------------------------------------------------- asterisk (human)
def human_digits() -> Path:
    """The ``digits/`` folder of the asterisk English prompts (``0.wav`` ... ``9.wav``, ``oh.wav``)."""
    return locate("asterisk-en") / "digits"


@functools.cache
def _recording(path: str) -> np.ndarray:
    audio = load_audio(Path(path))
    speech = np.flatnonzero(speech_labels(audio))
    if not speech.size:
        raise TTSError(f"{path} holds no speech")
    edge = round(_EDGE_S * SR)
    hop = round(HOP_S * SR)
    return audio[max(0, speech[0] * hop - edge) : min(audio.size, (speech[-1] + 1) * hop + edge)]


def say_human(words: list[str], rng: np.random.Generator, folder: Path | None = None) -> Spoken:
    """``words`` from the asterisk recordings, cut to their speech and joined with short gaps."""
    folder = folder or human_digits()
    names = {w: d for d, ws in WORDS.items() for w in ws} | {"oh": "oh"}
    parts, spans, pos = [], [], 0
    for i, word in enumerate(words):
        clip = _recording(str(folder / f"{names[word]}.wav"))
        gap = round(rng.uniform(*_HUMAN_GAP_S) * SR) if i else 0
        parts += [np.zeros(gap, np.float32), clip]
        spans.append(((pos + gap) / SR, (pos + gap + clip.size) / SR))
        pos += gap + clip.size
    audio = np.concatenate(parts).astype(np.float32)
    return Spoken(audio, speech_labels(audio), spans, "recording")


# ----------------------------------------------------------------------------- speaker perturbation
def resampled(spoken: Spoken, factor: float) -> Spoken:
    """``spoken`` played ``factor`` times faster by resampling: tempo, pitch and formants all scale by
    ``factor``, as for a shorter (> 1) or longer (< 1) vocal tract; the spans scale by ``1 / factor``.
    ``factor`` is rounded to a multiple of 0.01 so the resampling ratio stays small."""
    if not 0.5 <= factor <= 2.0:
        raise ValueError(f"expected a speed factor in [0.5, 2], received {factor}")
    rate = round(SR * round(factor, 2))
    if rate == SR:
        return spoken
    audio = to_mono_16k(spoken.audio, rate)
    scale = SR / rate
    return Spoken(audio, speech_labels(audio), [(a * scale, b * scale) for a, b in spoken.spans], spoken.timing)


# ----------------------------------------------------------------------------- helpers
def _trim_to_speech(spans: list[tuple[float, float]], labels: np.ndarray) -> list[tuple[float, float]]:
    """Each span cut to the first and last speech frame inside it (kept as is when it has none)."""
    out = []
    for start, end in spans:
        a, b = int(start / HOP_S), min(labels.size, int(end / HOP_S))  # frames starting inside the span
        inside = np.flatnonzero(labels[a:b])
        out.append((start, end) if not inside.size else (float((a + inside[0]) * HOP_S),
                                                          float((a + inside[-1] + 1) * HOP_S)))
    return out


def _even_spans(labels: np.ndarray, n: int) -> list[tuple[float, float]]:
    """The speech frames of a group (first to last) cut into ``n`` equal spans."""
    speech = np.flatnonzero(labels)
    first, last = (speech[0], speech[-1] + 1) if speech.size else (0, labels.size)
    edges = np.linspace(first, last, n + 1) * HOP_S
    return [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]
