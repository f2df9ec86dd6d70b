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

Files inside zip archives (``.pk3``) are addressed as ``SourceFile(path=archive, member=name)``.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import numpy as np

from streamseq.data.labels import drop_short
from streamseq.data.sources import SourceFile
from streamseq.debian import PACKAGE_FILES, locate, package_files

__all__ = ["Collection", "COLLECTIONS", "collection_files", "screen_speech"]

SR = 16000
AUDIO_SUFFIXES = (".wav", ".ogg", ".oga", ".opus", ".flac", ".aiff", ".aif", ".mp3")


@dataclass(frozen=True)
class Collection:
    """Rules for one package folder (``name`` is its :data:`PACKAGE_FILES` key).

    ``group``: ``"file"`` (each file), ``"dir"`` (first folder below the root), ``"all"`` (one
    unit: a single speaker or one music collection). ``held_out``: fnmatch patterns on the
    relative path (``"*"``: the whole collection) that go to the real validation split.
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
    return f"{collection.name}:{rel}"


def collection_files(collection: Collection) -> list[tuple[SourceFile, bool]]:
    """``(file, held_out)`` for every audio file of ``collection``, sorted by key."""
    root = locate(collection.name)
    spec = PACKAGE_FILES[collection.name]
    if root.suffix == ".pk3":  # a zip archive: its members are the files
        with zipfile.ZipFile(root) as z:
            rels = [n for n in z.namelist() if n.lower().endswith(AUDIO_SUFFIXES)]
        paths: list[tuple[Path, str | None, str]] = [(root, rel, rel) for rel in rels]
    else:
        listed = package_files(spec.package) or ()
        paths = [(Path(p), None, os.path.relpath(p, root)) for p in listed
                 if p.startswith(str(root) + "/") and fnmatchcase(p, spec.pattern)
                 and p.lower().endswith(AUDIO_SUFFIXES) and os.path.isfile(p)]
    out = []
    for path, member, rel in paths:
        if any(fnmatchcase(rel, pat) for pat in collection.exclude):
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
