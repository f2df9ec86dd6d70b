"""Music written as notes or patterns (MIDI, tracker modules, Doom WADs), rendered to audio through
the programs and soundfonts of ``scripts/setup.sh --train``. Skipped where that step has not run."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import soundfile as sf

from streamseq.data import render
from streamseq.data.archives import member_names, read_member
from streamseq.data.render import RENDER_S, midi_programs, rendered
from streamseq.data.sources import SourceFile, load_audio
from streamseq.debian import PACKAGE_FILES, MissingSystemFileError, PackageFiles, locate, package_files

SR = 16000


def needs(*keys: str) -> pytest.MarkDecorator:
    missing = sorted({PACKAGE_FILES[k].package for k in keys if package_files(PACKAGE_FILES[k].package) is None})
    return pytest.mark.skipif(bool(missing), reason=f"{', '.join(missing)}: installed by scripts/setup.sh --train")


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def midi(*events: bytes) -> bytes:
    """A one-track standard MIDI file (format 0, 96 ticks per quarter) holding ``events``."""
    track = b"".join(events) + b"\x00\xff\x2f\x00"  # end of track
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, 96) + b"MTrk" + struct.pack(">I", len(track)) + track


def test_midi_programs_reads_program_changes_through_running_status_meta_and_sysex():
    data = midi(
        b"\x00\xff\x51\x03\x07\xa1\x20",  # meta: tempo
        b"\x00\xc0\x34",  # program change, channel 1: 52 (Choir Aahs)
        b"\x00\x90\x3c\x64", b"\x81\x00\x3e\x64",  # note on, then one more by running status (2-byte delta)
        b"\x00\xf0\x03\x7e\x09\x01",  # system exclusive
        b"\x00\xc9\x35",  # program change on channel 10 (drum kits): not an instrument
        b"\x00\xc3\x00",  # channel 4: piano
        b"\x00\xb0\x07\x7f",  # controller
    )
    assert midi_programs(data) == {52, 0}
    assert midi_programs(data[:-10]) == {52}  # a truncated track: what precedes the cut
    with pytest.raises(ValueError, match="MThd"):
        midi_programs(b"RIFF....")


def test_wad_members_are_the_midi_lumps(tmp_path):
    song = midi(b"\x00\xc0\x10")
    lumps = [(b"MAP01", b"\x00" * 20), (b"D_RUNNIN", song), (b"D_OLD", b"MUS\x1a" + bytes(12))]
    body, table, offset = b"", b"", 12
    for name, data in lumps:
        table += struct.pack("<ii8s", offset + len(body), len(data), name)
        body += data
    wad = tmp_path / "test.wad"
    wad.write_bytes(b"PWAD" + struct.pack("<ii", len(lumps), 12 + len(body)) + body + table)
    assert member_names(wad) == ["D_RUNNIN.mid"]  # Doom's own MUS format and other lumps are not members
    assert read_member(wad, "D_RUNNIN.mid") == song
    with pytest.raises(KeyError, match="D_OLD.mid"):
        read_member(wad, "D_OLD.mid")


@needs("freedoom-music")
def test_freedoom_keeps_its_music_as_midi_lumps():
    wads = sorted(locate("freedoom-music").glob("freedoom*.wad"))
    counts = [len(member_names(w)) for w in wads]
    assert len(wads) == 2 and min(counts) >= 30
    assert read_member(wads[1], member_names(wads[1])[0]).startswith(b"MThd")


@pytest.mark.slow
@needs("fluidsynth", "soundfont-timgm6mb", "soundfont-fluid", "openttd-openmsx")
def test_a_midi_piece_renders_its_first_minute_once(tmp_path):
    piece = locate("openttd-openmsx") / "tttheme2.mid"  # 1 min 45 s
    out = rendered(piece, sr=SR, soundfont="soundfont-timgm6mb", cache_dir=tmp_path)
    x, rate = sf.read(out, dtype="float32")
    assert rate == SR and x.ndim == 1 and x.size == RENDER_S * SR
    assert rms(x) > 0.01 and rms(x[-SR:]) > 0.001  # music, to the end of the minute
    stamp = out.stat().st_mtime_ns
    assert rendered(piece, sr=SR, soundfont="soundfont-timgm6mb", cache_dir=tmp_path) == out
    assert out.stat().st_mtime_ns == stamp and sorted((tmp_path / "rendered").iterdir()) == [out]  # not again
    other = rendered(piece, sr=SR, soundfont="soundfont-fluid", cache_dir=tmp_path)
    y = sf.read(other, dtype="float32")[0]
    assert other != out and y.size == x.size and not np.allclose(x, y, atol=1e-3)  # another timbre


@pytest.mark.slow
@needs("openmpt123", "pingus-music")
def test_a_tracker_module_renders_whole_when_shorter_than_a_minute(tmp_path):
    module = locate("pingus-music") / "pingus-1.it"  # 33.4 s
    out = rendered(module, sr=SR, cache_dir=tmp_path)
    x, rate = sf.read(out, dtype="float32")
    assert rate == SR and x.ndim == 1 and 32 * SR < x.size < 35 * SR and rms(x) > 0.01
    stamp = out.stat().st_mtime_ns
    assert rendered(module, sr=SR, cache_dir=tmp_path) == out and out.stat().st_mtime_ns == stamp


@pytest.mark.slow
@needs("fluidsynth", *render.SOUNDFONT_KEYS, "freedoom-music")
def test_load_audio_renders_a_midi_lump_of_a_wad_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(render, "DEFAULT_CACHE", tmp_path)
    wad = locate("freedoom-music") / "freedoom2.wad"
    song = SourceFile(wad, "freedoom", "music", "D_RUNNIN.mid")
    x = load_audio(song)
    assert x.dtype == np.float32 and x.ndim == 1 and x.size == RENDER_S * SR and rms(x) > 0.01
    assert [p.name.split("-")[0] for p in (tmp_path / "rendered").iterdir()] == ["D_RUNNIN"]
    assert np.array_equal(load_audio(song, max_s=5.0), load_audio(song, max_s=5.0))  # a stable excerpt


@needs("pingus-music")
def test_a_missing_renderer_names_its_package_and_the_fix(tmp_path, monkeypatch):
    absent = PackageFiles("openmpt123", "streamseq-no-such-renderer", "*/openmpt123", "tracker renderer",
                          "bin/openmpt123", required=False, setup="train")
    monkeypatch.setitem(PACKAGE_FILES, "openmpt123", absent)
    with pytest.raises(MissingSystemFileError, match="apt-get install .*streamseq-no-such-renderer"):
        rendered(locate("pingus-music") / "pingus-1.it", sr=SR, cache_dir=tmp_path)
    assert not (tmp_path / "rendered").exists() or not any((tmp_path / "rendered").iterdir())
