"""Music written as notes (MIDI) or patterns (tracker modules), rendered to audio once and cached.

* MIDI (``.mid``, ``.midi``; also MIDI lumps of WAD archives, see :mod:`streamseq.data.archives`):
  ``fluidsynth`` with one General MIDI soundfont of :data:`SOUNDFONT_KEYS` (FluidR3, MuseScore
  General, TimGM6mb), no reverb or chorus (the mix adds its own rooms); only the samples a piece
  plays are loaded (same audio, a third of the time with MuseScore's compressed soundfont). The
  caller names the soundfont; :func:`streamseq.data.sources.load_audio` picks one per piece by a
  stable hash of its name, so each piece is one recording with one timbre: three renders of the
  same notes would triple the files without adding music and could put one piece three times
  into a pool.
* Tracker modules (``.mod``, ``.xm``, ``.it``, ``.s3m``): ``openmpt123``.

Both renderers write raw float32 to a pipe that is read for the first :data:`RENDER_S` seconds
only (``fluidsynth`` has no length option: it is stopped once that much has arrived); the audio
is mixed to mono, scaled down only where it would clip, and stored as 16-bit FLAC in
``<cache>/rendered/<name>-<key>.flac``. The key hashes the source (path, archive member, size,
modification time), the soundfont and the renderer's command line. A render is written under a
temporary name and renamed, so a rebuild never renders twice and an interrupted one leaves
nothing behind. A missing program or soundfont raises
:class:`~streamseq.debian.MissingSystemFileError` naming its package and the install command.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from streamseq.data.archives import read_member
from streamseq.debian import locate

__all__ = ["DEFAULT_CACHE", "MIDI_SUFFIXES", "MODULE_SUFFIXES", "RENDERED_SUFFIXES", "SOUNDFONT_KEYS", "RENDER_S",
           "VOICE_PROGRAMS", "rendered", "midi_programs"]

#: Where built corpora and rendered music are kept.
DEFAULT_CACHE = Path(os.environ.get("STREAMSEQ_CACHE", "~/.cache/streamseq")).expanduser()
MIDI_SUFFIXES = (".mid", ".midi")
MODULE_SUFFIXES = (".mod", ".xm", ".it", ".s3m")
RENDERED_SUFFIXES = MIDI_SUFFIXES + MODULE_SUFFIXES
#: The General MIDI soundfonts (entries of :data:`streamseq.debian.PACKAGE_FILES`).
SOUNDFONT_KEYS = ("soundfont-fluid", "soundfont-musescore", "soundfont-timgm6mb")
RENDER_S = 60.0  # seconds rendered from the start of each piece
#: General MIDI programs (0-based) that sound like voices: Choir Aahs, Voice Oohs, Synth Voice,
#: Lead 6 (voice), Pad 4 (choir). Collections leave out pieces that use them (sung: ambiguous).
VOICE_PROGRAMS = frozenset({52, 53, 54, 85, 91})


def _command(name: str, sr: int, soundfont: str | None) -> tuple[list[str], int]:
    """The renderer's command line (the input file goes last) and its number of output channels."""
    suffix = Path(name).suffix.lower()
    if suffix in MIDI_SUFFIXES:
        if soundfont not in SOUNDFONT_KEYS:
            raise ValueError(f"rendering MIDI file {name!r} needs one of the soundfonts {SOUNDFONT_KEYS}, "
                             f"got {soundfont!r}")
        return [str(locate("fluidsynth")), "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.5", "-r", str(sr), "-o",
                "synth.dynamic-sample-loading=1", "-T", "raw", "-O", "float", "-F", "-", str(locate(soundfont))], 2
    if suffix in MODULE_SUFFIXES:
        return [str(locate("openmpt123")), "--batch", "--quiet", "--stdout", "--float", "--samplerate", str(sr),
                "--channels", "1", "--end-time", f"{RENDER_S:g}", "--"], 1
    raise ValueError(f"cannot render {name!r}: expected a file ending in one of {RENDERED_SUFFIXES}")


def _run(argv: list[str], limit: int, name: str) -> bytes:
    """Up to ``limit`` bytes of ``argv``'s standard output; the program is stopped once it has sent them."""
    with tempfile.TemporaryFile() as err:
        with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err) as proc:
            assert proc.stdout is not None
            data = proc.stdout.read(limit)
            if len(data) == limit:
                proc.kill()  # the rest of the piece is not needed
            code = proc.wait()
        if not data or (code != 0 and len(data) < limit):
            err.seek(0)
            detail = err.read().decode(errors="replace").strip()[-400:]
            raise RuntimeError(f"{Path(argv[0]).name} rendered no audio from {name} (exit status {code}, "
                               f"{len(data)} bytes): {detail or 'no message'}")
    return data


def rendered(path: Path, member: str | None = None, *, sr: int, soundfont: str | None = None,
             cache_dir: Path | None = None) -> Path:
    """The FLAC file (mono, ``sr`` Hz, at most :data:`RENDER_S` s) rendered from ``path`` (or its archive
    ``member``), rendering it on first use. ``soundfont``: a :data:`SOUNDFONT_KEYS` entry, MIDI only.
    ``cache_dir`` defaults to :data:`DEFAULT_CACHE`."""
    name = member or path.name
    argv, channels = _command(name, sr, soundfont)
    stat = path.stat()
    key = json.dumps([str(path), member, stat.st_size, stat.st_mtime_ns, argv, RENDER_S]).encode()
    out = (cache_dir or DEFAULT_CACHE) / "rendered" / f"{Path(name).stem}-{hashlib.sha256(key).hexdigest()[:16]}.flac"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        source = path
        if member is not None:  # renderers read files: the member is copied out first
            source = Path(tmp) / Path(member).name
            source.write_bytes(read_member(path, member))
        frame = 4 * channels  # float32 per channel
        raw = _run([*argv, str(source)], int(RENDER_S * sr) * frame, str(path / member if member else path))
        x = np.frombuffer(raw[: len(raw) // frame * frame], np.float32).reshape(-1, channels).mean(axis=1)
        peak = float(np.abs(x).max())
        part = Path(tmp) / "part.flac"
        sf.write(part, x * min(1.0, 0.99 / max(peak, 1e-9)), sr, subtype="PCM_16")
        os.replace(part, out)
    return out


def _varlen(track: bytes, i: int) -> tuple[int, int]:
    """A MIDI variable-length number starting at ``track[i]``, and the index after it."""
    value = 0
    while True:
        byte, i = track[i], i + 1
        value = value << 7 | byte & 0x7F
        if byte < 0x80:
            return value, i


def _track_programs(track: bytes) -> set[int]:
    out, i, status = set(), 0, 0
    try:
        while i < len(track):
            i = _varlen(track, i)[1]  # delta time
            if track[i] & 0x80:  # a status byte; otherwise the previous one runs on
                status, i = track[i], i + 1
            if status == 0xFF:  # meta event: type, length, data
                length, i = _varlen(track, i + 1)
                i += length
            elif status in (0xF0, 0xF7):  # system exclusive: length, data
                length, i = _varlen(track, i)
                i += length
            else:  # channel message: one data byte (program change, channel pressure) or two
                if status & 0xF0 == 0xC0 and status & 0x0F != 9:
                    out.add(track[i])
                i += 1 if status & 0xF0 in (0xC0, 0xD0) else 2
    except IndexError:  # a truncated track: what precedes the cut
        pass
    return out


def midi_programs(data: bytes) -> set[int]:
    """General MIDI programs (0-127) that the program changes of MIDI file ``data`` select, drums
    (channel 10) aside."""
    if data[:4] != b"MThd":
        raise ValueError(f"expected a standard MIDI file starting with b'MThd', got {data[:4]!r}")
    out: set[int] = set()
    pos = 8 + int.from_bytes(data[4:8], "big")  # after the header chunk
    while pos + 8 <= len(data):
        tag, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "big")
        if tag == b"MTrk":
            out |= _track_programs(data[pos + 8 : pos + 8 + size])
        pos += 8 + size
    return out
