"""Offline text-to-speech through the Debian engines espeak-ng, flite and festival.

Each engine runs as a subprocess writing a temporary WAV that is read back with soundfile.
``synthesize`` returns the engine's native sample rate (espeak 22.05 kHz, flite 8/16 kHz,
festival 16/32 kHz); resample with :func:`streamseq.data.sources.to_mono_16k`.

``Voice.speaker_id`` names the *person* behind a voice so that splits hold out people, not
voice files: flite ``kal``/``kal16`` and festival ``kal_diphone`` are all ``"kal"``; flite ``slt``
and festival ``cmu_us_slt_arctic_hts`` are both ``"slt"``. An espeak voice+variant is its own
speaker (``"espeak:en-gb+f3"``).
"""

from __future__ import annotations

import functools
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from streamseq.debian import FESTIVAL_VOICE_KEYS, MissingSystemFileError, locate

__all__ = ["Voice", "TTSUnavailableError", "TTSError", "list_voices", "synthesize", "split_voices", "ENGINES"]

ENGINES = ("espeak", "flite", "festival")
# entries of streamseq.debian.PACKAGE_FILES: the program each engine runs
_EXECUTABLES = {"espeak": "espeak-ng", "flite": "flite", "festival": "festival"}
# espeak variants left out: "fast" is an unstable speed test, names with spaces cannot be passed.
_ESPEAK_SKIP_VARIANTS = {"fast"}
# flite voices left out: awb_time is a limited-domain voice that only says clock times.
_FLITE_SKIP = {"awb_time"}
_TIMEOUT_S = 120


class TTSUnavailableError(RuntimeError):
    """A TTS executable or voice is not installed."""


class TTSError(RuntimeError):
    """A TTS engine ran but failed."""


@dataclass(frozen=True)
class Voice:
    """One synthetic voice.

    ``params`` holds engine options; tuples ``(lo, hi)`` are ranges that :func:`synthesize` draws
    from per call (espeak ``speed_wpm``, ``pitch`` 0-99, ``amplitude``; flite/festival
    ``duration_stretch``).
    """

    engine: str
    name: str
    speaker_id: str
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")


def _require(engine: str) -> str:
    try:
        return str(locate(_EXECUTABLES[engine]))
    except MissingSystemFileError as exc:
        raise TTSUnavailableError(f"{engine}: {exc}") from None


def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(cmd, capture_output=True, timeout=_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace")[-500:]
        raise TTSError(f"{what} failed with exit code {proc.returncode}: {tail}")
    return proc


# ----------------------------------------------------------------------------- voice discovery


def _espeak_voices() -> list[Voice]:
    out = _run([_require("espeak"), "--voices=en"], "espeak-ng --voices=en").stdout.decode()
    languages = []
    for line in out.splitlines()[1:]:
        cols = line.split()
        # columns: Pty Language Age/Gender VoiceName File [Other...]; mbrola ("mb/") needs extra data
        if len(cols) >= 5 and cols[4].startswith("gmw/") and cols[1] not in languages:
            languages.append(cols[1])
    try:
        variant_dir = locate("espeak-ng-variants")
    except MissingSystemFileError as exc:
        raise TTSUnavailableError(f"espeak: {exc}") from None
    variants = sorted(
        p.name
        for p in variant_dir.iterdir()
        if p.is_file() and " " not in p.name and p.name not in _ESPEAK_SKIP_VARIANTS
    )
    return [
        Voice(
            "espeak",
            f"{lang}+{var}",
            f"espeak:{lang}+{var}",
            {
                "language": lang,
                "variant": var,
                "speed_wpm": (130, 210),
                "pitch": (25, 75),
                "amplitude": (50, 90),
            },
        )
        for lang in sorted(languages)
        for var in variants
    ]


def _person(name: str) -> str:
    name = re.sub(r"^cmu_us_|_(arctic_hts|arctic_clunits|diphone|clunits|hts|cg)$", "", name)
    return re.sub(r"\d+$", "", name)


def _flite_voices() -> list[Voice]:
    out = _run([_require("flite"), "-lv"], "flite -lv").stdout.decode()
    names = out.split(":", 1)[-1].split()
    return [
        Voice("flite", n, _person(n), {"duration_stretch": (0.85, 1.2)})
        for n in names
        if n not in _FLITE_SKIP
    ]


def _festival_voices() -> list[Voice]:
    _require("festival")
    voices = []
    for key in FESTIVAL_VOICE_KEYS:
        try:
            d = locate(key)
        except MissingSystemFileError as exc:
            raise TTSUnavailableError(f"festival: {exc}") from None
        voice = Voice("festival", d.name, _person(d.name), {"duration_stretch": (0.85, 1.2)})
        audio, _ = _synth(voice, "test", {"duration_stretch": 1.0})  # TTSError if the voice does not load
        if not audio.size:
            raise TTSError(f"festival voice {d.name!r} ({d}) produced no audio for 'test'")
        voices.append(voice)
    return voices


@functools.cache
def _list_voices_cached(engines: tuple[str, ...], strict: bool) -> tuple[Voice, ...]:
    found: list[Voice] = []
    listers = {"espeak": _espeak_voices, "flite": _flite_voices, "festival": _festival_voices}
    for engine in engines:
        try:
            found.extend(listers[engine]())
        except TTSUnavailableError:
            if strict:
                raise
    return tuple(found)


def list_voices(engines: tuple[str, ...] = ENGINES, *, strict: bool = True) -> list[Voice]:
    """All usable installed voices of ``engines`` in a stable order (espeak, flite, festival).

    With ``strict`` a missing engine raises :class:`TTSUnavailableError`; otherwise it is skipped.
    Festival voices are verified by synthesizing a word (about a second, cached per process).
    """
    bad = [e for e in engines if e not in ENGINES]
    if bad:
        raise ValueError(f"unknown engine(s) {bad}; expected a subset of {ENGINES}")
    return list(_list_voices_cached(tuple(engines), strict))


# ----------------------------------------------------------------------------- synthesis


def _draw(value: Any, rng: np.random.Generator, integer: bool = False) -> Any:
    if isinstance(value, tuple) and len(value) == 2:
        lo, hi = value
        return int(rng.integers(lo, hi + 1)) if integer else float(rng.uniform(lo, hi))
    return value


def _synth(voice: Voice, text: str, drawn: dict[str, Any]) -> tuple[np.ndarray, int]:
    exe = _require(voice.engine)
    with tempfile.TemporaryDirectory(prefix="streamseq-tts-") as tmp:
        txt, wav = Path(tmp) / "in.txt", Path(tmp) / "out.wav"
        txt.write_text(text + "\n", encoding="utf-8")
        if voice.engine == "espeak":
            cmd = [exe, "-v", voice.name, "-s", str(drawn["speed_wpm"]), "-p", str(drawn["pitch"]),
                   "-a", str(drawn["amplitude"]), "-w", str(wav), "-f", str(txt)]
        elif voice.engine == "flite":
            cmd = [exe, "-voice", voice.name, "--setf", f"duration_stretch={drawn['duration_stretch']:.3f}",
                   "-f", str(txt), "-o", str(wav)]
        else:
            cmd = [exe, "-eval", f"(voice_{voice.name})",
                   "-eval", f"(Parameter.set 'Duration_Stretch {drawn['duration_stretch']:.3f})",
                   str(txt), "-o", str(wav)]
        _run(cmd, f"{voice.engine} voice {voice.name!r}")
        if not wav.exists() or wav.stat().st_size <= 44:
            raise TTSError(f"{voice.engine} voice {voice.name!r} wrote no audio for {text[:60]!r}")
        audio, sr = sf.read(str(wav), dtype="float32", always_2d=False)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    return np.ascontiguousarray(audio, dtype=np.float32), int(sr)


def synthesize(voice: Voice, text: str, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Speak ``text`` with ``voice``; returns ``(audio float32 (N,), sample_rate_hz)``.

    Randomized engine parameters (espeak speed/pitch/amplitude, flite/festival duration stretch)
    are drawn from ``voice.params`` ranges with ``rng``, so equal rng state gives equal audio.
    """
    if not text.strip():
        raise ValueError("text must contain at least one non-space character")
    drawn = {
        k: _draw(v, rng, integer=voice.engine == "espeak")
        for k, v in sorted(voice.params.items())
        if k in ("speed_wpm", "pitch", "amplitude", "duration_stretch")
    }
    return _synth(voice, text, drawn)


# ----------------------------------------------------------------------------- train/valid split

VALID_ESPEAK_LANGUAGES = ("en-029",)
VALID_PERSONS = ("rms", "ked")


def split_voices(voices: list[Voice], variant_fraction: float = 0.15) -> dict[str, list[Voice]]:
    """Seed-independent speaker split: ``{"train": [...], "valid": [...]}``.

    Valid gets every espeak voice whose variant hashes (crc32) into the held ``variant_fraction``
    or whose accent is in ``VALID_ESPEAK_LANGUAGES`` (so valid has unseen timbres *and* an unseen
    accent), and every flite/festival voice of a person in ``VALID_PERSONS``. If an engine would
    have no held-out voice, its person with the lowest hash is held out too.
    """
    from streamseq.data.sources import stable_bucket

    held_variants = {v.params["variant"] for v in voices if v.engine == "espeak"
                     and stable_bucket("espeak-variant:" + v.params["variant"]) < 100 * variant_fraction}
    persons = {p for p in VALID_PERSONS if any(v.speaker_id == p for v in voices)}
    for engine in ("flite", "festival"):
        mine = sorted({v.speaker_id for v in voices if v.engine == engine}, key=stable_bucket)
        if len(mine) > 1 and not persons.intersection(mine):
            persons.add(mine[0])

    def held(v: Voice) -> bool:
        if v.engine == "espeak":
            return v.params["variant"] in held_variants or v.params["language"] in VALID_ESPEAK_LANGUAGES
        return v.speaker_id in persons

    return {"train": [v for v in voices if not held(v)], "valid": [v for v in voices if held(v)]}
