"""Offline text-to-speech through the Debian engines espeak-ng, flite and festival.

Each engine runs as a subprocess writing a temporary WAV that is read back with soundfile.
``synthesize`` returns the engine's native sample rate (espeak 22.05 kHz, flite 8/16 kHz,
festival 16/32 kHz); resample with :func:`streamseq.data.sources.to_mono_16k`.

``Voice.speaker_id`` names the *person* behind a voice so that splits hold out people, not
voice files: flite ``kal``/``kal16`` and festival ``kal_diphone`` are all ``"kal"``; flite ``slt``
and festival ``cmu_us_slt_arctic_hts`` are both ``"slt"``. An espeak voice+variant is its own
speaker (``"espeak:en-gb+f3"``).

Languages: by default the voices speak English (espeak's English accents, festival's English
voices), as the synthetic-only corpora of ``make demo`` and the tests always have.
``list_voices(multilingual=True)`` (training corpora) adds every other espeak-ng language that
passes a probe (see :func:`_espeak_probe`) and the festival voices of ``scripts/setup.sh --train``
(Catalan, Czech, Finnish, Italian, Russian, Hindi, Marathi, Telugu). Each voice's ``params["text"]``
names the text it reads (a kind of :func:`streamseq.data.text.random_text`; absent: English), and
:func:`voice_weights` keeps English at :data:`ENGLISH_SHARE` of each engine's utterances.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from streamseq.data.text import phrase_languages, phrases
from streamseq.debian import FESTIVAL_TRAIN_VOICE_KEYS, FESTIVAL_VOICE_KEYS, MissingSystemFileError, locate

__all__ = ["Voice", "TTSUnavailableError", "TTSError", "list_voices", "synthesize", "split_voices", "voice_weights",
           "ENGINES", "ENGLISH_SHARE"]

ENGINES = ("espeak", "flite", "festival")
# entries of streamseq.debian.PACKAGE_FILES: the program each engine runs
_EXECUTABLES = {"espeak": "espeak-ng", "flite": "flite", "festival": "festival"}
# espeak variants left out: "fast" is an unstable speed test, names with spaces cannot be passed.
_ESPEAK_SKIP_VARIANTS = {"fast"}
# flite voices left out: awb_time is a limited-domain voice that only says clock times.
_FLITE_SKIP = {"awb_time"}
_TIMEOUT_S = 120
#: Share of each engine's utterances its English voices speak when the voice list is multilingual;
#: the other languages share the rest evenly (see :func:`voice_weights`).
ENGLISH_SHARE = 0.4
# espeak-ng probes of multilingual lists (see _espeak_probe)
_PROBE_NUMERALS = "7, 1984, 12:30, 3.5, 07 12 55, 12.5.2023."
_PROBE_LATIN = "Maria Berlin"
# Festival voices of FESTIVAL_TRAIN_VOICE_KEYS: (language, encoding festival must read the text in (it reads
# bytes: with another one it spells accented letters out or fails), the text they read (a
# streamseq.data.text kind: the Russian voice fails on "12:30" and "3,5", so plain numbers), the
# PACKAGE_FILES entry of language files it loads, the speaker (the three Indian voices are one man, NSK)).
_FESTIVAL_TRAIN: dict[str, tuple[str, str, str, str | None, str]] = {
    "festvox-ca-ona-hts": ("ca", "latin-1", "words:ca+numerals", None, "ona"),
    "festvox-czech-dita": ("cs", "iso-8859-2", "words:cs+numerals", None, "dita"),
    "festvox-hi-nsk": ("hi", "utf-8", "words:hi+numerals", "festival-hi", "nsk"),
    "festvox-italp16k": ("it", "latin-1", "words:it+numerals", None, "lp"),
    "festvox-mr-nsk": ("mr", "utf-8", "words:mr+numerals", "festival-mr", "nsk"),
    "festvox-ru": ("ru", "utf-8", "words:ru+numbers", None, "nsh"),
    "festvox-suopuhe-lj": ("fi", "latin-1", "words:fi+numerals", None, "lj"),
    "festvox-te-nsk": ("te", "utf-8", "words:te+numerals", "festival-te", "nsk"),
}
_EDGE_PAUSE_S = 0.25  # silenced festival pauses: at most this much kept before and after the speech


class TTSUnavailableError(RuntimeError):
    """A TTS executable or voice is not installed."""


class TTSError(RuntimeError):
    """A TTS engine ran but failed."""


@dataclass(frozen=True)
class Voice:
    """One synthetic voice.

    ``params`` holds engine options; tuples ``(lo, hi)`` are ranges that :func:`synthesize` draws
    from per call (espeak ``speed_wpm``, ``pitch`` 0-99, ``amplitude``; flite/festival
    ``duration_stretch``). Voices of other languages than English also have ``language``, ``text``
    (what they read) and, for festival, ``encoding`` and ``silence_pauses``.
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
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise TTSError(f"{what} ran longer than {_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace")[-500:]
        raise TTSError(f"{what} failed with exit code {proc.returncode}: {tail}")
    return proc


# ----------------------------------------------------------------------------- voice discovery


def _espeak_languages(exe: str, english: bool) -> list[str]:
    """Languages of ``espeak-ng --voices``: its English accents, or all others; mbrola ("mb/") ones need extra data."""
    arg = "--voices=en" if english else "--voices"
    languages = []
    for line in _run([exe, arg], f"espeak-ng {arg}").stdout.decode().splitlines()[1:]:
        cols = line.split()  # Pty Language Age/Gender VoiceName File [Other...]
        if len(cols) >= 5 and not cols[4].startswith("mb/") and cols[1] not in languages:
            if not english or cols[4].startswith("gmw/"):
                languages.append(cols[1])
    return languages


def _espeak_probe(exe: str, language: str) -> str | None:
    """The text kind ``language`` reads (``numerals``, plus ``names`` and ``words:<lang>``), or None.

    A language is used when espeak-ng reads ``_PROBE_NUMERALS`` (integers, a year, a time, a
    decimal, digit groups, a date) with its own rules, i.e. the ``-x`` phonemes are not empty and
    show no switch to another language (written ``(en)``), into at least 0.5 s of audio that is
    not silent. It also reads names when ``_PROBE_LATIN`` passes the same phoneme test (Latin
    script), and the words of ``text/<lang>.txt`` when there is one for its base language.
    """
    with tempfile.TemporaryDirectory(prefix="streamseq-tts-") as tmp:
        wav = Path(tmp) / "probe.wav"
        try:
            proc = subprocess.run([exe, "-v", language, "-x", "-w", str(wav), _PROBE_NUMERALS],
                                  capture_output=True, timeout=_TIMEOUT_S, check=False)
            phonemes = proc.stdout.decode("utf-8", "replace")
            if proc.returncode or not phonemes.strip() or "(" in phonemes or not wav.is_file():
                return None
            audio, sr = sf.read(str(wav), dtype="float32", always_2d=False)
            if audio.size < 0.5 * sr or float(np.abs(audio).max()) < 0.01:
                return None
            latin = subprocess.run([exe, "-v", language, "-q", "-x", _PROBE_LATIN], capture_output=True,
                                   timeout=_TIMEOUT_S, check=False).stdout.decode("utf-8", "replace")
        except (subprocess.TimeoutExpired, sf.LibsndfileError):
            return None
    parts = ["numerals"]
    if latin.strip() and "(" not in latin:
        parts.append("names")
    base = language.split("-")[0]
    if base in phrase_languages():
        parts.append(f"words:{base}")
    return "+".join(parts)


def _espeak_voices(multilingual: bool) -> list[Voice]:
    exe = _require("espeak")
    texts: dict[str, str | None] = {lang: None for lang in _espeak_languages(exe, english=True)}
    if multilingual:
        others = [lang for lang in _espeak_languages(exe, english=False) if lang not in texts]
        with ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1))) as pool:
            kinds = list(pool.map(functools.partial(_espeak_probe, exe), others))
        texts.update({lang: kind for lang, kind in zip(others, kinds, strict=True) if kind is not None})
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
                **({} if texts[lang] is None else {"text": texts[lang]}),
            },
        )
        for lang in sorted(texts)
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


def _verified(voice: Voice, text: str) -> Voice:
    """``voice`` once it has said ``text`` aloud (at least 0.2 s, not silent); else TTSError."""
    audio, sr = _synth(voice, text, {"duration_stretch": 1.0})  # TTSError if the voice does not load
    if audio.size < 0.2 * sr or float(np.abs(audio).max()) < 0.01:
        raise TTSError(f"festival voice {voice.name!r} said {text!r} as {audio.size / sr:.2f} s of audio "
                       f"peaking at {float(np.abs(audio).max(initial=0)):.4f}; expected at least 0.2 s, not silent")
    return voice


def _festival_voices(multilingual: bool, strict: bool) -> list[Voice]:
    _require("festival")
    voices = []
    for key in FESTIVAL_VOICE_KEYS:
        try:
            d = locate(key)
        except MissingSystemFileError as exc:
            raise TTSUnavailableError(f"festival: {exc}") from None
        voices.append(_verified(Voice("festival", d.name, _person(d.name), {"duration_stretch": (0.85, 1.2)}), "test"))
    for key in FESTIVAL_TRAIN_VOICE_KEYS if multilingual else ():
        language, encoding, text, needs, person = _FESTIVAL_TRAIN[key]
        try:
            d = locate(key)
            if needs:
                locate(needs)
            locate("festival-interpreter")
        except MissingSystemFileError as exc:
            if strict:
                raise TTSUnavailableError(f"festival ({language}, a training voice of scripts/setup.sh --train): "
                                          f"{exc}") from None
            continue
        params = {"duration_stretch": (0.85, 1.2), "language": language, "encoding": encoding, "text": text,
                  "silence_pauses": True}
        voices.append(_verified(Voice("festival", d.name, person, params), f"{phrases(language)[0]}, 7."))
    return voices


@functools.cache
def _list_voices_cached(engines: tuple[str, ...], strict: bool, multilingual: bool) -> tuple[Voice, ...]:
    found: list[Voice] = []
    listers = {"espeak": lambda: _espeak_voices(multilingual), "flite": _flite_voices,
               "festival": lambda: _festival_voices(multilingual, strict)}
    for engine in engines:
        try:
            found.extend(listers[engine]())
        except TTSUnavailableError:
            if strict:
                raise
    return tuple(found)


def list_voices(engines: tuple[str, ...] = ENGINES, *, strict: bool = True, multilingual: bool = False) -> list[Voice]:
    """All usable installed voices of ``engines`` in a stable order (espeak, flite, festival).

    Without ``multilingual`` the English voices only; with it also every espeak-ng language that
    passes :func:`_espeak_probe` (about a hundred, probed in a few seconds) and the festival voices of
    ``scripts/setup.sh --train``. With ``strict`` a missing engine, or a missing training voice
    when ``multilingual``, raises :class:`TTSUnavailableError`; otherwise it is skipped.
    Festival voices are verified by synthesizing a word (about a second each). Cached per process.
    """
    bad = [e for e in engines if e not in ENGINES]
    if bad:
        raise ValueError(f"unknown engine(s) {bad}; expected a subset of {ENGINES}")
    return list(_list_voices_cached(tuple(engines), strict, multilingual))


def voice_weights(voices: list[Voice]) -> np.ndarray:
    """Probability of each of one engine's ``voices`` to speak an utterance, ``(len(voices),)``, sums to 1.

    The voices reading English text (no ``params["text"]``) share :data:`ENGLISH_SHARE` evenly, or
    everything when no other language is there (then every voice weighs the same); the other
    languages (``params["language"]``) share the rest evenly, and a language's share is split evenly
    over its voices (espeak variants). So English never vanishes and no language dominates, however
    many variants each has.
    """
    if not voices:
        raise ValueError("voice_weights needs at least one voice")
    english = np.array(["text" not in v.params for v in voices])
    languages = [v.params.get("language", "") for v in voices]
    others = sorted({lang for lang, en in zip(languages, english, strict=True) if not en})
    share = ENGLISH_SHARE if english.any() and others else float(english.any())
    per_language = {lang: sum(1 for x, en in zip(languages, english, strict=True) if x == lang and not en)
                    for lang in others}
    w = np.array([share / english.sum() if en else (1 - share) / len(others) / per_language[lang]
                  for lang, en in zip(languages, english, strict=True)])
    return w / w.sum()


# ----------------------------------------------------------------------------- synthesis


def _draw(value: Any, rng: np.random.Generator, integer: bool = False) -> Any:
    if isinstance(value, tuple) and len(value) == 2:
        lo, hi = value
        return int(rng.integers(lo, hi + 1)) if integer else float(rng.uniform(lo, hi))
    return value


def _festival_script(voice: Voice, text: str, stretch: float, wav: Path, segs: Path) -> str:
    """Scheme that says ``text`` into ``wav`` and writes each segment's end (s) and pause flag to ``segs``."""
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    return (f"(voice_{voice.name})\n(Parameter.set 'Duration_Stretch {stretch:.3f})\n"
            f'(set! utt (utt.synth (Utterance Text "{quoted}")))\n(utt.save.wave utt "{wav}" \'riff)\n'
            f'(set! segs (fopen "{segs}" "w"))\n'
            '(mapcar (lambda (s) (format segs "%s %l\\n" (item.feat s "end") (phone_is_silence (item.name s))))\n'
            "        (utt.relation.items utt 'Segment))\n(fclose segs)\n")


def _silence_pauses(audio: np.ndarray, sr: int, segs: str) -> np.ndarray:
    """Festival's pause segments as digital silence, at most ``_EDGE_PAUSE_S`` of it kept at either end.

    The Indian voices' pauses hold recorded noise about 20 dB under the speech, which the energy
    labels of :mod:`streamseq.data.labels` would call speech; every voice's pauses are treated alike.
    """
    audio, start = audio.copy(), 0
    for line in segs.splitlines():
        end_s, silent = line.split()
        end = min(audio.shape[0], round(float(end_s) * sr))
        if silent != "nil":
            audio[start:end] = 0
        start = end
    active = np.flatnonzero(np.abs(audio).max(axis=1) if audio.ndim == 2 else audio)
    if not active.size:
        return audio[:0]
    edge = round(_EDGE_PAUSE_S * sr)
    return audio[max(0, active[0] - edge) : active[-1] + 1 + edge]


def _command(exe: str, voice: Voice, drawn: dict[str, Any], txt: Path, wav: Path) -> list[str]:
    if voice.engine == "espeak":
        return [exe, "-v", voice.name, "-s", str(drawn["speed_wpm"]), "-p", str(drawn["pitch"]),
                "-a", str(drawn["amplitude"]), "-w", str(wav), "-f", str(txt)]
    if voice.engine == "flite":
        return [exe, "-voice", voice.name, "--setf", f"duration_stretch={drawn['duration_stretch']:.3f}",
                "-f", str(txt), "-o", str(wav)]
    return [exe, "-eval", f"(voice_{voice.name})",
            "-eval", f"(Parameter.set 'Duration_Stretch {drawn['duration_stretch']:.3f})", str(txt), "-o", str(wav)]


def _festival_say(voice: Voice, text: str, stretch: float, tmp: Path, wav: Path) -> str:
    """Run ``_festival_script`` (written in the voice's encoding); returns the segment lines."""
    script, segs = tmp / "say.scm", tmp / "segs.txt"
    encoding = voice.params.get("encoding", "utf-8")
    try:
        script.write_bytes(_festival_script(voice, text, stretch, wav, segs).encode(encoding))
    except UnicodeEncodeError as exc:
        raise TTSError(f"festival voice {voice.name!r} reads {encoding}, which cannot write "
                       f"{exc.object[exc.start:exc.end]!r} of {text[:60]!r}") from None
    _run([str(locate("festival-interpreter")), "--batch", str(script)], f"festival voice {voice.name!r}")
    return segs.read_text() if segs.is_file() else ""


def _synth(voice: Voice, text: str, drawn: dict[str, Any]) -> tuple[np.ndarray, int]:
    exe = _require(voice.engine)
    pauses = voice.params.get("silence_pauses", False)
    with tempfile.TemporaryDirectory(prefix="streamseq-tts-") as tmp:
        txt, wav = Path(tmp) / "in.txt", Path(tmp) / "out.wav"
        if pauses:
            segs = _festival_say(voice, text, drawn["duration_stretch"], Path(tmp), wav)
        else:
            txt.write_text(text + "\n", encoding="utf-8")
            _run(_command(exe, voice, drawn, txt, wav), f"{voice.engine} voice {voice.name!r}")
        if not wav.exists() or wav.stat().st_size <= 44:
            raise TTSError(f"{voice.engine} voice {voice.name!r} wrote no audio for {text[:60]!r}")
        audio, sr = sf.read(str(wav), dtype="float32", always_2d=False)
    if pauses:
        audio = _silence_pauses(audio, int(sr), segs)
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
