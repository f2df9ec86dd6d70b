"""A program, not a module to import: ``python espeak_words.py LIBRARY VOICE RATE PITCH VOLUME WAV TEXT``
says TEXT with libespeak-ng into WAV (16-bit mono) and prints, per word event, ``text_position sample``
(``text_position`` 1-based in TEXT's UTF-8 bytes, ``sample`` where the word starts).

One fresh process per utterance, like the ``espeak-ng`` command: the library keeps voice
settings from one synthesis to the next, so inside one long-lived process an utterance would
depend on those said before it (and differ from the command line's). Standard library only, so
it starts in milliseconds (run with ``python -I -S``).
"""

import ctypes
import sys
import wave
from typing import Any


class Event(ctypes.Structure):  # espeak_EVENT of speak_lib.h
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


class Voice(ctypes.Structure):  # espeak_VOICE of speak_lib.h
    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_char_p), ("identifier", ctypes.c_char_p),
                ("gender", ctypes.c_ubyte), ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte),
                ("xx1", ctypes.c_ubyte), ("score", ctypes.c_int), ("spare", ctypes.c_void_p)]


CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(Event))
SYNCHRONOUS, CHARS_UTF8, POS_CHARACTER = 2, 1, 1  # espeak_AUDIO_OUTPUT, synth flags, espeak_POSITION_TYPE
WORD, LIST_TERMINATED = 1, 0  # espeak_EVENT_TYPE
RATE, VOLUME, PITCH = 1, 2, 3  # espeak_PARAMETER


def main(argv: list[str]) -> int:
    library, voice, rate, pitch, volume, wav, text = argv
    lib = ctypes.CDLL(library)
    sr = lib.espeak_Initialize(SYNCHRONOUS, 0, None, 0)
    if sr <= 0:
        print(f"libespeak-ng failed to initialise (returned {sr})", file=sys.stderr)
        return 1
    audio, words = bytearray(), list[tuple[int, int]]()

    def collect(samples: Any, n: int, events: Any) -> int:
        if n > 0:
            audio.extend(ctypes.string_at(samples, 2 * n))
        i = 0
        while events[i].type != LIST_TERMINATED:
            if events[i].type == WORD:
                words.append((events[i].text_position, events[i].sample))
            i += 1
        return 0

    callback = CALLBACK(collect)
    lib.espeak_SetSynthCallback(callback)
    # as the command does: the voice by name, else by language ("en-gb+f3": language en-gb, variant f3)
    if lib.espeak_SetVoiceByName(voice.encode()) and lib.espeak_SetVoiceByProperties(
            ctypes.byref(Voice(languages=voice.encode()))):
        print(f"voice {voice!r} did not load", file=sys.stderr)
        return 1
    for key, value in ((RATE, rate), (PITCH, pitch), (VOLUME, volume)):
        lib.espeak_SetParameter(key, int(value), 0)
    data = text.encode()
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                 ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    if lib.espeak_Synth(data, len(data) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8, None, None) or lib.espeak_Synchronize():
        print(f"synthesis of {text!r} failed", file=sys.stderr)
        return 1
    with wave.open(wav, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sr)
        out.writeframes(bytes(audio))
    print("\n".join(f"{position} {sample}" for position, sample in words))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
