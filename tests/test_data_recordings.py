"""Real recordings from the Debian packages of ``scripts/setup.sh --train``, and the channel
effects of the training mix. Skipped where that set-up step has not run."""

from __future__ import annotations

import numpy as np
import pytest

from streamseq.data.augment import CODECS, band_limit, clip_and_offset, codec_roundtrip, random_eq
from streamseq.data.recordings import COLLECTIONS, collection_files, screen_speech
from streamseq.data.sources import load_audio, pink_noise
from streamseq.debian import PACKAGE_FILES, package_files

SR = 16000


def installed(name: str) -> bool:
    return package_files(PACKAGE_FILES[name].package) is not None


needs_train_setup = pytest.mark.skipif(
    not all(installed(c.name) for c in COLLECTIONS),
    reason="the recordings of scripts/setup.sh --train are not installed",
)
needs_ffmpeg = pytest.mark.skipif(not installed("ffmpeg"), reason="ffmpeg comes with scripts/setup.sh --train")


@pytest.fixture(scope="module")
def files() -> dict[str, list]:
    return {c.name: collection_files(c) for c in COLLECTIONS}


@pytest.fixture(scope="module")
def silero():
    from silero_vad import load_silero_vad

    return load_silero_vad(onnx=True)


@needs_train_setup
def test_every_collection_has_audio_and_held_out_units_never_reach_training(files):
    for c in COLLECTIONS:
        listed = files[c.name]
        assert len(listed) >= 3, c.name
        held = {f.key for f, h in listed if h}
        train = {f.key for f, h in listed if not h}
        assert not held & train
        if c.held_out == ("*",):
            assert not train
        if c.group == "dir" and all(p.endswith("/*") for p in c.held_out):  # whole speakers/languages held out
            assert not {f.group for f, h in listed if h} & {f.group for f, h in listed if not h}


@needs_train_setup
def test_ambiguous_and_duplicate_material_is_left_out(files):
    keys = [f.key for name in files for f, _ in files[name]]
    assert not [k for k in keys if "/voices/Singer/" in k or "/voices/Robot/" in k]
    assert not [k for k in keys if "/sounds/sr@" in k]
    assert not [k for k in keys if "/silence/" in k]
    samples = [f.name for f, _ in files["sonic-pi-samples"]]
    assert samples and not [n for n in samples if "robot" in n or n.startswith(("ambi_choir", "bass_voxy"))]
    assert not [k for k in keys if "/npcs/" in k]


@needs_train_setup
def test_the_real_validation_split_holds_out_whole_speakers_and_music_packages(files):
    held = {name: {f.group for f, h in files[name] if h} for name in files}
    assert held["asterisk-ru"] == {"asterisk-ru"} and held["planetblupi-music"] and held["hyperrogue-music"]
    assert {"ktuberling:de", "ktuberling:it", "ktuberling:nl"} <= held["ktuberling"]
    fillets = [(f.name, h) for f, h in files["fillets-cs"]]
    assert all(("-v-" in name) == h for name, h in fillets)  # the big fish's lines, and only his


@needs_train_setup
def test_excerpts_of_long_recordings_are_stable_and_bounded(files):
    song = files["warzone2100-music"][0][0]
    a, b = load_audio(song, max_s=5.0), load_audio(song, max_s=5.0)
    assert a.size == 5 * SR and np.array_equal(a, b)
    member = files["ufoai-music"][0][0]
    assert member.member and load_audio(member, max_s=2.0).size == 2 * SR  # a file inside a zip archive


@needs_train_setup
def test_screening_finds_speech_in_dialogue_and_none_in_noise(files, silero):
    line = max((f for f, _ in files["fillets-cs"][:40]), key=lambda f: f.path.stat().st_size)
    speech = load_audio(line)
    assert screen_speech(speech, silero) > 0.3 * speech.size / SR
    assert screen_speech(pink_noise(np.random.default_rng(0), 10.0) * 0.3, silero) == 0.0


def voiced(seconds: float = 3.0) -> np.ndarray:
    """A buzzy harmonic tone with a syllable-rate envelope: broadband, like voiced speech."""
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 40))
    return (0.1 * x * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)


def test_band_limit_removes_the_top_of_the_spectrum_and_keeps_the_timing():
    x = (0.1 * np.random.default_rng(0).standard_normal(3 * SR)).astype(np.float32)
    for seed in (0, 1):  # 11025 and 8000 Hz content
        y, meta = band_limit(x, np.random.default_rng(seed))
        power_x, power_y = np.abs(np.fft.rfft(x)) ** 2, np.abs(np.fft.rfft(y)) ** 2
        freq = np.fft.rfftfreq(x.size, 1 / SR)
        above, low = freq > 1.1 * meta["band_limit_hz"] / 2, freq < 1000
        assert y.shape == x.shape and power_y[above].sum() < 0.06 * power_x[above].sum()
        assert abs(power_y[low].sum() / power_x[low].sum() - 1) < 0.01


def test_random_eq_changes_the_balance_not_the_length_or_timing():
    x = voiced()
    y, meta = random_eq(x, np.random.default_rng(3))
    assert y.shape == x.shape and np.isfinite(y).all() and 1 <= len(meta["eq"]) <= 3
    lag = np.argmax(np.correlate(y[SR : SR + 4000], x[SR : SR + 2000], mode="valid"))
    assert lag < 50  # min-phase biquads: no delay beyond a few ms


@pytest.mark.slow
@needs_ffmpeg
@pytest.mark.parametrize("codec", sorted(CODECS))
def test_codec_round_trip_stays_aligned_with_the_input(codec):
    x = voiced(4.0)
    for seed in range(40):  # find a seed that draws this codec
        rng = np.random.default_rng(seed)
        if str(np.random.default_rng(seed).choice(sorted(CODECS))) == codec:
            break
    y, meta = codec_roundtrip(x, rng)
    assert meta["codec"] == codec and y.shape == x.shape
    low_x, low_y = band_limit_to(x, 3000), band_limit_to(y, 3000)
    core = slice(SR // 2, -SR // 2)
    assert np.corrcoef(low_x[core], low_y[core])[0, 1] > 0.8  # same waveform at the same time


def band_limit_to(x: np.ndarray, hz: float) -> np.ndarray:
    spec = np.fft.rfft(x)
    spec[int(hz * x.size / SR):] = 0
    return np.fft.irfft(spec, x.size)


def test_clipping_and_dc_offset_stay_within_full_scale():
    x = voiced()
    y, meta = clip_and_offset(x, np.random.default_rng(2), clipping=True, dc=True)
    assert np.max(np.abs(y)) <= 1.0 and "clipping_db" in meta and "dc_offset" in meta
    assert np.mean(np.abs(y) >= 0.999) > 0.01  # really clipped


@needs_train_setup
def test_rendered_music_is_notes_or_patterns_without_voices_and_held_out_like_its_package(files):
    rendered = {"openttd-openmsx": ".mid", "planetblupi-midi": ".mid", "freedoom-music": ".mid",
                "pingus-music": (".it", ".s3m"), "heroes-music": ".xm", "ri-li-music": (".xm", ".mod")}
    for name, suffixes in rendered.items():
        assert all((f.member or f.path.name).endswith(suffixes) for f, _ in files[name]), name
    held = {name: {h for _, h in files[name]} for name in rendered}
    assert held == {**{name: {False} for name in rendered}, "planetblupi-midi": {True}, "ri-li-music": {True}}
    names = {f.name for name in rendered for f, _ in files[name]}
    assert "5432gone_redfarn" not in names and "D_E1M3" not in names  # Voice Oohs, Choir Aahs
    assert "D_E1M5" in names and "D_E2M6" not in names  # the same notes twice in freedoom1.wad


@needs_train_setup
def test_warzone_and_codec2_give_speech_and_leave_out_effects_laughs_and_modems(files, silero):
    lines = {f.member: (f, h) for f, h in files["warzone2100-voices"]}
    assert len(lines) > 400 and "audio/tutorial/tut1.ogg" in lines
    assert not [m for m in lines if m.startswith(("audio/sfx/", "audio/multi/", "audio/radclick/", "audio/nexus/",
                                                  "sequenceaudio/")) or "/haha" in m]
    held = {f.group for f, h in lines.values() if h}
    assert held == {f"warzone2100-voices:audio/{d}" for d in ("taunts/taunt3", "vtoltalk", "trnsppil")}
    codec2 = {f.name: f for f, _ in files["codec2-speech"]}
    assert {"ve9qrp", "vk5qi", "hts1a"} <= set(codec2) and not {"all", "david4", "vk2tpm_004"} & set(codec2)
    for f in (lines["audio/tutorial/tut1.ogg"][0], codec2["vk5qi"]):  # a zip member, a noisy HF-radio recording
        audio = load_audio(f)
        assert screen_speech(audio, silero) > 0.5 * audio.size / SR
    modem = load_audio(codec2["vk5qi"].path.with_name("david4.wav"))
    assert screen_speech(modem, silero) == 0.0
