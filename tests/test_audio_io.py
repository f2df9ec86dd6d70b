"""Block reading of sound files: every soundfile format, any channel count, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from conftest import noisy_tone
from streamseq.audio.io import AudioFileError, iter_blocks, read_info


@pytest.mark.parametrize("fmt,ext,exact", [("WAV", "wav", True), ("FLAC", "flac", True),
                                           ("OGG", "ogg", False), ("MP3", "mp3", False)])
def test_blocks_cover_the_file_in_order(tmp_path, fmt, ext, exact):
    signal = noisy_tone(1.3, rate=22050, channels=2)  # (N, 2)
    path = tmp_path / f"x.{ext}"
    sf.write(path, signal, 22050, format=fmt)
    info = read_info(path)
    assert (info.sample_rate, info.channels) == (22050, 2)
    blocks = list(iter_blocks(path, 0.25))
    assert all(b.dtype == np.float32 and b.ndim == 2 and b.shape[1] == 2 for b in blocks)
    assert all(len(b) == round(0.25 * 22050) for b in blocks[:-1])
    joined = np.concatenate(blocks)
    assert len(joined) == info.frames
    if exact:
        assert len(joined) == len(signal) and np.abs(joined - signal).max() < 1e-4


def test_channel_picks_one_column(tmp_path):
    signal = noisy_tone(0.5, channels=2)
    sf.write(tmp_path / "s.wav", signal, 16000, subtype="FLOAT")
    picked = np.concatenate(list(iter_blocks(tmp_path / "s.wav", 0.1, channel=1)))
    assert picked.shape == (len(signal), 1)
    np.testing.assert_array_equal(picked[:, 0], signal[:, 1])


def test_invalid_channel_names_the_file_and_the_valid_range(tmp_path):
    sf.write(tmp_path / "s.wav", noisy_tone(0.2, channels=2), 16000)
    message = r"s\.wav: channel 2 requested but the file has 2 channel\(s\) \(valid: 0\.\.1\)"
    with pytest.raises(AudioFileError, match=message):
        next(iter_blocks(tmp_path / "s.wav", 0.1, channel=2))


def test_bad_files_are_reported_with_path_and_reason(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "noise.wav").write_bytes(np.random.default_rng(0).bytes(4000))
    sf.write(tmp_path / "silent.wav", np.zeros((0, 1), np.float32), 16000)
    cases = {"missing.wav": "no such file", "empty.wav": r"empty file \(0 bytes\)",
             "noise.wav": "not a readable audio file", "silent.wav": "contains no audio samples"}
    for name, reason in cases.items():
        with pytest.raises(AudioFileError, match=f"{name}: {reason}"):
            read_info(tmp_path / name)


@pytest.mark.parametrize("fmt,ext", [("WAV", "wav"), ("FLAC", "flac")])
def test_truncated_files_fail_instead_of_passing_for_short_ones(tmp_path, fmt, ext):
    path = tmp_path / f"t.{ext}"
    sf.write(path, noisy_tone(2.0), 16000, format=fmt)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(AudioFileError, match=f"t.{ext}: (truncated|decoding failed)"):
        for _ in iter_blocks(path, 0.5):
            pass


def test_block_length_must_be_positive(tmp_path):
    sf.write(tmp_path / "s.wav", noisy_tone(0.2), 16000)
    with pytest.raises(ValueError, match="block_s must be a positive number of seconds; received 0"):
        next(iter_blocks(tmp_path / "s.wav", 0))
