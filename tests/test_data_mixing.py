"""Mixing: SNR, gain, label grid and non-speech clips, on real TTS / Debian recordings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streamseq.data.labels import frames_to_samples, speech_labels
from streamseq.data.mixing import (
    MixConfig,
    NoisePool,
    SpeechPool,
    Utterance,
    make_clip,
    reverberate,
    snr_band,
    telephone,
)
from streamseq.data.sources import (
    NOISE_KINDS,
    effect_files,
    load_audio,
    music_files,
    real_speech_files,
    synthetic_noise,
    to_mono_16k,
)
from streamseq.data.text import random_text
from streamseq.data.tts import list_voices, synthesize

SR = 16000
NO_EXTRAS = dict(p_reverb=0.0, p_telephone=0.0, augment=False)


@pytest.fixture(scope="module")
def pools() -> tuple[SpeechPool, NoisePool]:
    rng = np.random.default_rng(0)
    voices = list_voices()
    pick = [v for v in voices if v.engine == "espeak"][::200] + [v for v in voices if v.engine != "espeak"][::3]
    utts = []
    for v in pick:
        audio, sr = synthesize(v, random_text(rng, max_s=4.0), rng)
        utts.append(Utterance(to_mono_16k(audio, sr), v.engine, v.speaker_id))
    for f in real_speech_files()[:2]:
        utts.append(Utterance(load_audio(f.path), "asterisk", f.group))
    music = min(music_files(), key=lambda f: f.path.stat().st_size)
    noise = NoisePool(music=[(music.name, load_audio(music.path))],
                      effects=[(f.name, load_audio(f.path)) for f in effect_files()])
    return SpeechPool(utts), noise


def measured_snr(clip) -> float:
    active = frames_to_samples(clip.labels, clip.audio.size)
    speech, noise = clip.speech.astype(np.float64), clip.noise.astype(np.float64)
    return 10 * np.log10(np.mean(speech[active] ** 2) / np.mean(noise**2))


@pytest.mark.slow
@pytest.mark.parametrize("background", ["music", "effects", "noise"])
@pytest.mark.parametrize("snr", [-5.0, 0.0, 12.5, 30.0])
def test_snr_is_hit_within_half_a_db(pools, background, snr):
    cfg = MixConfig(p_nonspeech=0.0, p_clean=0.0, snr_db=(snr, snr), background_weights={background: 1.0},
                    augment=False)
    clip = make_clip(np.random.default_rng(int(snr * 10) + 70), *pools, 8.0, cfg, keep_parts=True)
    assert clip.meta["background"] == background and clip.meta["snr_db"] == pytest.approx(snr)
    assert abs(measured_snr(clip) - snr) < 0.5
    np.testing.assert_allclose(clip.speech + clip.noise, clip.audio, atol=1e-6)


@pytest.mark.slow
def test_snr_holds_with_reverb_and_telephone(pools):
    cfg = MixConfig(p_nonspeech=0.0, p_clean=0.0, p_reverb=1.0, p_telephone=1.0, snr_db=(3.0, 3.0), augment=False)
    for seed in range(3):
        clip = make_clip(np.random.default_rng(seed), *pools, 7.0, cfg, keep_parts=True)
        assert clip.meta["reverb"] and clip.meta["telephone"] and 0.2 <= clip.meta["rt60_s"] <= 0.8
        assert abs(measured_snr(clip) - 3.0) < 0.5


@pytest.mark.slow
def test_gain_range_and_no_clipping(pools):
    for seed in range(12):
        clip = make_clip(np.random.default_rng(100 + seed), *pools, 6.0)
        peak = float(np.max(np.abs(clip.audio)))
        assert peak < 1.0 and MixConfig().gain_dbfs[0] - 1e-3 <= clip.meta["gain_dbfs"] <= 0.0
        assert 20 * np.log10(peak) == pytest.approx(clip.meta["gain_dbfs"], abs=1e-2)
        assert clip.audio.dtype == np.float32 and clip.labels.dtype == np.uint8


@pytest.mark.slow
@pytest.mark.parametrize("duration", [6.0, 6.00731, 13.3, 19.99])
def test_label_length_is_ceil_n_over_160(pools, duration):
    clip = make_clip(np.random.default_rng(3), *pools, duration)
    n = int(round(duration * SR))
    assert clip.audio.shape == (n,) and clip.labels.shape == (math.ceil(n / 160),)


@pytest.mark.slow
def test_non_speech_clips_have_all_zero_labels(pools):
    cfg = MixConfig(p_nonspeech=1.0)
    for seed in range(6):
        clip = make_clip(np.random.default_rng(seed), *pools, 6.5, cfg)
        assert clip.labels.sum() == 0 and clip.meta["speech_source"] == "none"
        assert clip.meta["background"] in ("music", "effects", "noise") and clip.meta["snr_db"] is None
        assert np.max(np.abs(clip.audio)) > 0


@pytest.mark.slow
def test_about_15_percent_of_clips_are_non_speech(pools):
    cfg = MixConfig(**NO_EXTRAS)
    flags = [make_clip(np.random.default_rng(s), *pools, 2.0, cfg).meta["speech_source"] == "none" for s in range(150)]
    assert 0.08 <= np.mean(flags) <= 0.24


@pytest.mark.slow
def test_speech_clips_have_speech_where_labelled(pools):
    cfg = MixConfig(p_nonspeech=0.0, p_clean=1.0, **NO_EXTRAS)
    clip = make_clip(np.random.default_rng(5), *pools, 10.0, cfg, keep_parts=True)
    assert clip.meta["snr_band"] == "clean" and clip.meta["background"] == "silence"
    active = frames_to_samples(clip.labels, clip.audio.size)
    assert 0.1 < active.mean() < 0.95
    assert not active[:160].any() and not active[-160:].any()  # leading and trailing non-speech
    on, off = np.mean(clip.speech[active] ** 2), np.mean(clip.speech[~active] ** 2)
    assert 10 * np.log10(on / off) > 20
    # labels of the clean speech track agree with the per-utterance labels
    agree = np.mean(speech_labels(clip.speech) == clip.labels)
    assert agree > 0.9


@pytest.mark.slow
def test_labels_come_from_dry_speech(pools):
    dry = make_clip(np.random.default_rng(9), *pools, 9.0, MixConfig(p_nonspeech=0.0, p_reverb=0.0))
    wet = make_clip(np.random.default_rng(9), *pools, 9.0, MixConfig(p_nonspeech=0.0, p_reverb=1.0))
    assert wet.meta["reverb"] and not dry.meta["reverb"]
    np.testing.assert_array_equal(dry.labels, wet.labels)


@pytest.mark.slow
def test_same_seed_same_clip(pools):
    a = make_clip(np.random.default_rng(42), *pools, 12.0)
    b = make_clip(np.random.default_rng(42), *pools, 12.0)
    np.testing.assert_array_equal(a.audio, b.audio)
    assert a.meta == b.meta


@pytest.mark.slow
def test_music_loops_to_fill(pools):
    tone = (0.3 * np.sin(2 * np.pi * 330 * np.arange(SR // 2) / SR)).astype(np.float32)
    noise = NoisePool(music=[("tone", tone)], effects=pools[1].effects)
    cfg = MixConfig(p_nonspeech=1.0, background_weights={"music": 1.0}, **NO_EXTRAS)
    clip = make_clip(np.random.default_rng(1), pools[0], noise, 8.0, cfg)
    frames = clip.audio[: clip.audio.size // 160 * 160].reshape(-1, 160)
    assert np.all(np.sqrt(np.mean(frames**2, axis=1)) > 1e-3 * np.max(np.abs(clip.audio)))


def test_snr_bands():
    assert [snr_band(v) for v in (None, -5, -0.1, 0, 9.9, 10, 25, 30)] == [
        "clean", "-5..0", "-5..0", "0..10", "0..10", "10..20", "20..30", "20..30"]


def test_telephone_band_limits():
    x = synthetic_noise("white", np.random.default_rng(0), 2.0)
    y = telephone(4 * x)  # peaks well above 1: the filters must stay linear (no clamping)
    np.testing.assert_allclose(y, 4 * telephone(x), rtol=1e-4, atol=1e-6)
    spec = np.abs(np.fft.rfft(y * np.hanning(y.size))) ** 2
    f = np.fft.rfftfreq(y.size, 1 / SR)
    in_band = spec[(f > 500) & (f < 3000)].mean()
    assert spec[f > 4000].mean() < in_band * 1e-4  # -40 dB above 4 kHz
    assert spec[f < 100].mean() < in_band * 0.1


def test_reverb_tail_decays():
    x = np.zeros(SR, dtype=np.float32)
    x[0] = 1.0
    y = reverberate(x, np.random.default_rng(0), 0.5)
    assert y[0] == pytest.approx(1.0)
    early, late = np.mean(y[800:1600] ** 2), np.mean(y[6400:7200] ** 2)
    assert 10 * np.log10(early / late) > 30  # ~ -60 dB per 0.5 s -> ~42 dB between these windows


@pytest.mark.parametrize("kind", sorted(NOISE_KINDS))
def test_synthetic_noise_shapes(kind):
    x = synthetic_noise(kind, np.random.default_rng(0), 1.2345)
    assert x.dtype == np.float32 and x.shape == (round(1.2345 * SR),) and np.isfinite(x).all()
    assert np.max(np.abs(x)) > 0


def test_sources_are_16k_mono_and_exclude_spoken_effects():
    names = {f.name for f in effect_files()}
    assert names and not any(n.startswith("audio-channel-") for n in names)
    assert "beep" not in {f.name for f in real_speech_files()}
    x = load_audio(next(f for f in effect_files() if f.name == "complete").path)  # 44.1 kHz stereo
    assert x.ndim == 1 and x.dtype == np.float32 and x.size == pytest.approx(1.09 * SR, rel=0.01)


@pytest.mark.slow
def test_tts_engines_voices_and_determinism():
    voices = list_voices()
    by_engine = {e: [v for v in voices if v.engine == e] for e in ("espeak", "flite", "festival")}
    assert len(by_engine["espeak"]) >= 100 and len(by_engine["flite"]) >= 3 and len(by_engine["festival"]) >= 2
    a1, sr1 = synthesize(by_engine["espeak"][0], "Seven boats.", np.random.default_rng(1))
    a2, sr2 = synthesize(by_engine["espeak"][0], "Seven boats.", np.random.default_rng(1))
    assert sr1 == sr2 and a1.dtype == np.float32 and np.array_equal(a1, a2) and a1.size > 0.3 * sr1


@pytest.mark.slow
def test_recorded_speech_clips_come_from_one_package_and_fixed_snrs_name_their_band(pools):
    speech, noise = pools
    recorded = [Utterance(u.audio, "recorded", f"{pkg}:{i}") for i, u in enumerate(speech.utterances[:6])
                for pkg in ("pkg-a", "pkg-b")]
    cfg = MixConfig(p_nonspeech=0.0, p_clean=0.0, snr_choices=(20.0, 5.0), source_weights={"recorded": 1.0})
    seen = set()
    for seed in range(8):
        clip = make_clip(np.random.default_rng(seed), SpeechPool(recorded), noise, 8.0, cfg)
        origin = clip.meta["speech_source"]
        assert origin in ("pkg-a", "pkg-b") and {s.split(":")[0] for s in clip.meta["speakers"]} == {origin}
        assert clip.meta["snr_band"] in ("20", "5") and clip.meta["snr_db"] in (20.0, 5.0)
        seen.add(origin)
    assert seen == {"pkg-a", "pkg-b"}
