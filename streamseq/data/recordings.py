"""Real recordings from Debian packages: human speech in many languages, full-band music, effects.

Each :class:`Collection` is one entry of :data:`streamseq.debian.PACKAGE_FILES` (the folder its
package installs) plus the rules that turn its files into :class:`SourceFile` items:

* which files are audio and which are left out (``exclude``, fnmatch on the path relative to
  the collection's folder): non-speech in speech packages (``silence/``), speech in non-speech
  packages (spoken lines, merchants), and **ambiguous material, left out of both classes**:
  sung (hedgewars ``Singer``, sonic-pi ``ambi_choir``) and vocoded/robot voices (hedgewars
  ``Robot``, sonic-pi ``*robot*``, ``bass_voxy*``);
* the split unit ``group`` (a speaker, a language, a level, a recording), and
* which units are **held out for the real-recordings validation split** (``held_out``):
  whole voices/languages/packages never seen in training.

Music and effects files are also screened with Silero VAD (:func:`screen_speech`) and a file in
which it finds speech is left out (vocals or spoken lines the rules above missed); the list of
what was dropped is written into the corpus's ``split.json``.

Files inside archives (zip ``.pk3``/``.wz``, Doom ``.wad``; :mod:`streamseq.data.archives`) are
addressed as ``SourceFile(path=archive, member=name)``, and their relative path is
``<archive path below the folder>/<member>`` (just ``<member>`` when the collection is one archive).

MIDI files and tracker modules are music written as notes or patterns; loading one renders its
first minute once (:mod:`streamseq.data.render`). A MIDI piece that plays a voice-like General
MIDI instrument (choir, voice oohs, synth voice: :data:`VOICE_PROGRAMS`) is left out like other
sung material.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import numpy as np

from streamseq.data.archives import is_archive, member_names, read_member
from streamseq.data.labels import drop_short
from streamseq.data.render import MIDI_SUFFIXES, RENDERED_SUFFIXES, VOICE_PROGRAMS, midi_programs
from streamseq.data.sources import SourceFile
from streamseq.debian import PACKAGE_FILES, locate, package_files

__all__ = ["Collection", "COLLECTIONS", "collection_files", "screen_speech"]

SR = 16000
AUDIO_SUFFIXES = (".wav", ".ogg", ".oga", ".opus", ".flac", ".aiff", ".aif", ".mp3")
SUFFIXES = AUDIO_SUFFIXES + RENDERED_SUFFIXES  # what a collection's files may be


@dataclass(frozen=True)
class Collection:
    """Rules for one package folder (``name`` is its :data:`PACKAGE_FILES` key).

    ``group``: ``"file"`` (each file), ``"dir"`` (first folder below the root), ``"folder"`` (the
    folder holding the file), ``"all"`` (one unit: a single speaker or one music collection).
    ``held_out``: fnmatch patterns on the relative path (``"*"``: the whole collection) that go to
    the real validation split.
    """

    name: str
    kind: str  # "speech" | "music" | "effects"
    language: str = ""
    group: str = "file"
    exclude: tuple[str, ...] = ()
    held_out: tuple[str, ...] = ()


COLLECTIONS: tuple[Collection, ...] = (
    # --- real human speech (label rule: energy relative to the utterance, as for all speech)
    Collection("asterisk-it", "speech", "it", "all", ("silence/*",)),
    Collection("asterisk-ru", "speech", "ru", "all", ("silence/*",), held_out=("*",)),
    Collection("asterisk-it-menardi", "speech", "it", "all", ("silence/*",)),
    # acted dialogue: "-v-" lines are the big fish (one of the two leads), held out whole
    Collection("fillets-cs", "speech", "cs", "dir", held_out=("*-v-*",)),
    # one speaker per language; the sr@* folders duplicate sr
    Collection("ktuberling", "speech", "multi", "dir", ("sr@*",), held_out=("de/*", "it/*", "nl/*")),
    Collection("klettres", "speech", "multi", "dir", held_out=("cs/*", "da/*", "hu/*")),
    Collection("gcin-voice", "speech", "zh", "all"),
    # short shouts; Singer (sung) and Robot (vocoded) are ambiguous: left out of both classes
    Collection("hedgewars-voices", "speech", "multi", "dir", ("Singer/*", "Robot/*"),
               held_out=("Pirate/*", "HillBilly/*")),
    # radio messages of a strategy game, one folder per kind of message. Not speech: effects
    # (sfx, multi, radclick), cut-scene beds with a few words (sequenceaudio), laughs; the AI
    # Nexus's processed voice is ambiguous. Most folders are one female console voice (median F0
    # 170-190 Hz); held out are male voices (judged by pitch, not by ear) of no training folder:
    # the third taunt voice (taunt1/2's lines, another actor) and the VTOL and transport pilots.
    Collection("warzone2100-voices", "speech", "en", "folder",
               ("audio/sfx/*", "audio/multi/*", "audio/radclick/*", "sequenceaudio/*", "audio/nexus/*", "*/haha*"),
               held_out=("audio/taunts/taunt3/*", "audio/vtoltalk/*", "audio/trnsppil/*")),
    # codec test speech (clean, coded at 2400 bit/s, over HF radio: ve9qrp, vk5qi). all.wav
    # repeats the others; david4 and vk2tpm_004 are modem signals, not speech.
    Collection("codec2-speech", "speech", "en", "all", ("all.wav", "david4.wav", "vk2tpm_004.wav")),
    # --- full-band music (each file is a recording; whole packages held out)
    Collection("hedgewars-music", "music", group="all"),
    Collection("warzone2100-music", "music", group="all"),
    Collection("planetblupi-music", "music", group="all", held_out=("*",)),
    Collection("colobot-music", "music", group="all"),
    Collection("supertux-music", "music", group="all"),
    Collection("marsshooter-music", "music", group="all"),
    Collection("flare-music", "music", group="all"),
    Collection("openclonk-music", "music", group="all"),
    Collection("hyperrogue-music", "music", group="all", held_out=("*",)),
    Collection("asc-music", "music", group="all"),
    Collection("lincity-music", "music", group="all"),
    Collection("ufoai-music", "music", group="all"),
    # rendered from MIDI or tracker modules; planetblupi and ri-li are held out like their other audio
    Collection("openttd-openmsx", "music", group="all"),
    Collection("planetblupi-midi", "music", group="all", held_out=("*",)),
    Collection("freedoom-music", "music", group="all", exclude=("freedoom1.wad/D_E2M6.mid",)),  # = D_E1M5
    Collection("pingus-music", "music", group="all"),
    Collection("heroes-music", "music", group="all"),
    Collection("ri-li-music", "music", group="all", exclude=("*.wav",), held_out=("*",)),  # the wav files: effects
    # --- effects, ambiences and instrument samples
    Collection("hedgewars-sounds", "effects", group="all", exclude=("voices/*",)),
    Collection("colobot-sounds", "effects", group="all"),
    Collection("supertux-sounds", "effects", group="all"),
    Collection("flare-sounds", "effects", group="all", exclude=("*/npcs/*",)),
    Collection("hyperrogue-sounds", "effects", group="all", held_out=("*",)),
    Collection("marsshooter-sounds", "effects", group="all"),
    Collection("lincity-sounds", "effects", group="all"),
    Collection("ufoai-sounds", "effects", group="all"),
    Collection("ri-li-sounds", "effects", group="all", held_out=("*",)),
    Collection("hydrogen-drumkits", "effects", group="all"),
    Collection("lmms-samples", "effects", group="all"),
    Collection("sonic-pi-samples", "effects", group="all",
               exclude=("*robot*", "ambi_choir*", "bass_voxy*", "*.md")),
)


def _unit(collection: Collection, rel: str) -> str:
    if collection.group == "all":
        return collection.name
    if collection.group == "dir" and "/" in rel:
        return f"{collection.name}:{rel.split('/', 1)[0]}"
    if collection.group == "folder" and "/" in rel:
        return f"{collection.name}:{rel.rsplit('/', 1)[0]}"
    return f"{collection.name}:{rel}"


def _paths(collection: Collection) -> list[tuple[Path, str | None, str]]:
    """``(path, member, relative path)`` of every audio file and archive member of ``collection``."""
    root = locate(collection.name)
    spec = PACKAGE_FILES[collection.name]
    out: list[tuple[Path, str | None, str]] = []
    for p in package_files(spec.package) or ():
        if not ((p == str(root) or p.startswith(str(root) + "/")) and fnmatchcase(p, spec.pattern)
                and os.path.isfile(p)):
            continue
        path, rel = Path(p), os.path.relpath(p, root)
        if is_archive(path):
            members = [m for m in member_names(path) if m.lower().endswith(SUFFIXES)]
            out += [(path, m, m if rel == "." else f"{rel}/{m}") for m in members]
        elif p.lower().endswith(SUFFIXES):
            out.append((path, None, rel))
    return out


def _sings(path: Path, member: str | None) -> bool:
    """A MIDI piece that plays a voice-like instrument."""
    data = read_member(path, member) if member else path.read_bytes()
    return bool(midi_programs(data) & VOICE_PROGRAMS)


def collection_files(collection: Collection) -> list[tuple[SourceFile, bool]]:
    """``(file, held_out)`` for every audio file of ``collection``, sorted by key."""
    out = []
    for path, member, rel in _paths(collection):
        if any(fnmatchcase(rel, pat) for pat in collection.exclude):
            continue
        if rel.lower().endswith(MIDI_SUFFIXES) and _sings(path, member):
            continue
        held = any(fnmatchcase(rel, pat) for pat in collection.held_out)
        out.append((SourceFile(path, _unit(collection, rel), collection.kind, member), held))
    return sorted(out, key=lambda item: item[0].key)


def screen_speech(audio_16k: np.ndarray, model, segment_s: float = 4.0) -> float:
    """Seconds of ``audio_16k`` that Silero VAD ``model`` calls speech in runs of at least ~200 ms.

    The audio is cut into ``segment_s`` pieces run as one batch (about 10x faster than one stream;
    each piece starts from a fresh state, which only matters for the first few chunks).
    """
    import torch

    if not audio_16k.size:  # an empty file: no speech (the corpus drops it as empty)
        return 0.0
    chunk = 512
    seg = max(chunk, int(segment_s * SR) // chunk * chunk)
    x = np.pad(audio_16k.astype(np.float32), (0, -audio_16k.size % seg)).reshape(-1, seg)
    model.reset_states()
    probs = np.stack([model(torch.from_numpy(np.ascontiguousarray(x[:, i : i + chunk])), SR).numpy()[:, 0]
                      for i in range(0, seg, chunk)], axis=1).reshape(-1)
    return float(drop_short(probs >= 0.5, 7).sum()) * chunk / SR
