"""Files inside archives: zip archives (``.pk3``, ``.wz``) and Doom WADs (``.wad``).

A member is named by its path inside a zip archive, or ``<LUMP>.mid`` for a WAD lump that holds a
standard MIDI file (``MThd``; freedoom keeps its music so). Other lumps (maps, graphics, Doom's
own ``MUS`` format) are not members.

WAD layout (all little-endian): a 12-byte header ``IWAD|PWAD, lump count (int32), directory
offset (int32)``, then at that offset one 16-byte entry per lump: ``offset (int32), size (int32),
name (8 bytes, NUL-padded)``.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

__all__ = ["ARCHIVE_SUFFIXES", "is_archive", "member_names", "read_member"]

ZIP_SUFFIXES = (".pk3", ".wz")
WAD_SUFFIXES = (".wad",)
ARCHIVE_SUFFIXES = ZIP_SUFFIXES + WAD_SUFFIXES


def is_archive(path: Path) -> bool:
    return path.suffix.lower() in ARCHIVE_SUFFIXES


def _wad_midi_lumps(path: Path) -> dict[str, tuple[int, int]]:
    """``{"<LUMP>.mid": (offset, size)}`` for the lumps of WAD ``path`` that are MIDI files."""
    out = {}
    with open(path, "rb") as f:
        magic, count, table = struct.unpack("<4sii", f.read(12))
        if magic not in (b"IWAD", b"PWAD"):
            raise ValueError(f"{path}: expected a WAD file starting with IWAD or PWAD, got {magic!r}")
        f.seek(table)
        directory = f.read(16 * count)
        for i in range(len(directory) // 16):
            offset, size, raw = struct.unpack_from("<ii8s", directory, 16 * i)
            f.seek(offset)
            if size > 4 and f.read(4) == b"MThd":
                out[raw.rstrip(b"\0").decode("ascii", "replace") + ".mid"] = (offset, size)
    return out


def member_names(path: Path) -> list[str]:
    """Names of the members of archive ``path``, in archive order."""
    if path.suffix.lower() in WAD_SUFFIXES:
        return list(_wad_midi_lumps(path))
    with zipfile.ZipFile(path) as z:
        return z.namelist()


def read_member(path: Path, member: str) -> bytes:
    """The bytes of ``member`` of archive ``path``; KeyError naming both when there is no such member."""
    if path.suffix.lower() in WAD_SUFFIXES:
        lumps = _wad_midi_lumps(path)
        if member not in lumps:
            raise KeyError(f"{path} has no MIDI lump {member!r} (it has {len(lumps)}, e.g. {sorted(lumps)[:3]})")
        offset, size = lumps[member]
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(size)
    with zipfile.ZipFile(path) as z:
        return z.read(member)
