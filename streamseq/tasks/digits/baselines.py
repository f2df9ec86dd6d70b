"""A spoken-digit recogniser to compare against: PocketSphinx with a digit grammar.

PocketSphinx 5 (PyPI ``pocketsphinx``, an optional peer: ``pip install streamseq[peers]``) decodes
with its bundled US English acoustic model and CMUdict, searching only the JSGF grammar
:data:`GRAMMAR`: one or more digit words. A recogniser maps a mono clip ``(N,)`` at any rate
to its digit string ("zero" and "oh" are both "0"), like the digits models' transcripts.
The whole clip is one PocketSphinx utterance; the silences and pauses between groups are its
silence and filler models' job.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from streamseq.audio.resample import resample
from streamseq.tasks.digits.speech import WORDS

Recognizer = Callable[[np.ndarray, int], str]  # (audio (N,) float32 in [-1, 1], sample rate Hz) -> digits
SAMPLE_RATE = 16000  # of PocketSphinx's en-us acoustic model
WORD_DIGIT = {word: digit for digit, words in WORDS.items() for word in words}  # "oh" -> "0", "seven" -> "7"
GRAMMAR = ("#JSGF V1.0;\ngrammar digits;\npublic <digits> = <digit>+;\n"
           f"<digit> = {' | '.join(sorted(WORD_DIGIT))};\n")


def to_pcm16(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """A mono float clip ``(N,)`` as 16 kHz int16 samples ``(M,)``, resampled by :func:`resample`."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected a mono clip of shape (N,); received shape {audio.shape}")
    if sample_rate != SAMPLE_RATE:
        audio = resample(torch.from_numpy(audio), sample_rate, SAMPLE_RATE).numpy()
    return np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)


def pocketsphinx_recognizer() -> Recognizer:
    """PocketSphinx (en-us model, :data:`GRAMMAR`); ImportError when ``pocketsphinx`` is not installed.

    Each clip is one utterance of a fresh decoder (0.2 s to load), so no clip's result depends on
    the clips before it: ``full_utt`` (cepstral mean from the whole clip, as an offline system
    would) and ``dither`` with a fixed seed. Dither matters on TTS audio: its digitally silent
    pauses otherwise throw the features off (on espeak-ng digit strings, 0.49 -> 0.29 digit error).
    """
    from pocketsphinx import Decoder

    def recognize(audio: np.ndarray, sample_rate: int) -> str:
        decoder = Decoder(lm=None, samprate=SAMPLE_RATE, dither=True, seed=1, loglevel="FATAL")
        decoder.add_jsgf_string("digits", GRAMMAR)
        decoder.activate_search("digits")
        decoder.start_utt()
        decoder.process_raw(to_pcm16(audio, sample_rate).tobytes(), full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        return "".join(WORD_DIGIT[w] for w in (hyp.hypstr.split() if hyp is not None else []))

    return recognize


def available_recognizers() -> dict[str, Recognizer]:
    """``pocketsphinx`` when its package loads; else nothing."""
    try:
        return {"pocketsphinx": pocketsphinx_recognizer()}
    except ImportError:
        return {}
