"""Multilingual TTS on the real engines: espeak-ng languages past English, festival's training voices,
the text each reads, the mix weights and the held-out split."""

from __future__ import annotations

import numpy as np
import pytest

from streamseq.data import tts
from streamseq.data.labels import speech_labels
from streamseq.data.sources import to_mono_16k
from streamseq.data.text import phrase_languages, phrases, random_text
from streamseq.data.tts import ENGLISH_SHARE, Voice, list_voices, split_voices, synthesize, voice_weights
from streamseq.debian import FESTIVAL_TRAIN_VOICE_KEYS, PACKAGE_FILES, locate, package_files


def said(voice: Voice, text: str, seed: int = 0) -> np.ndarray:
    """``text`` spoken by ``voice`` as 16 kHz float32; checks it is speech of a plausible length."""
    audio, sr = synthesize(voice, text, np.random.default_rng(seed))
    x = to_mono_16k(audio, sr)
    speech_s = speech_labels(x).sum() / 100
    assert x.dtype == np.float32 and float(np.abs(x).max()) > 0.05, (voice.name, text)
    assert 0.3 < speech_s < 20.0 and x.size / 16000 < 30.0, (voice.name, text, speech_s, x.size)
    return x


# ----------------------------------------------------------------------------- no engine needed


def test_english_voices_share_a_fixed_part_and_languages_share_the_rest_evenly():
    def v(lang: str, var: str, text: str | None) -> Voice:
        return Voice("espeak", f"{lang}+{var}", f"espeak:{lang}+{var}",
                     {"language": lang, "variant": var, **({"text": text} if text else {})})

    english = [v(lang, var, None) for lang in ("en-gb", "en-us") for var in ("f1", "m1", "m2")]
    others = [v("cs", var, "numerals") for var in ("f1", "m1", "m2", "m3")] + [v("ar", "f1", "numerals")]
    w = voice_weights(english + others)
    assert w.shape == (11,) and w.sum() == pytest.approx(1.0)
    assert w[:6].sum() == pytest.approx(ENGLISH_SHARE) and np.allclose(w[:6], w[0])
    assert w[6:10].sum() == pytest.approx(w[10]) == pytest.approx((1 - ENGLISH_SHARE) / 2)  # per language
    w = voice_weights(english)  # English only: every voice alike (the corpus then draws uniformly)
    assert np.all(w == w[0]) and w[0] == pytest.approx(1 / 6)
    assert voice_weights(others)[:4].sum() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="at least one"):
        voice_weights([])


def test_text_kinds_are_seeded_and_read_their_own_lists():
    assert set(phrase_languages()) >= {"ca", "cs", "fi", "it", "ru", "hi", "mr", "te", "de", "nl", "da", "hu"}
    for kind in ("numerals", "numbers", "numerals+names", "words:cs+numerals", "words:hi+numbers"):
        a = random_text(np.random.default_rng(3), kind=kind)
        assert a == random_text(np.random.default_rng(3), kind=kind) and a.strip()
    numbers = " ".join(random_text(np.random.default_rng(s), kind="numbers") for s in range(20))
    assert not set(numbers) - set("0123456789 .,?")
    assert ":" not in numbers.replace(" ", "")
    words = " ".join(random_text(np.random.default_rng(s), kind="words:ru") for s in range(10))
    assert any(p in words for p in phrases("ru")) and not any("a" <= c <= "z" for c in words.lower())
    assert random_text(np.random.default_rng(3)) == random_text(np.random.default_rng(3), kind="en")
    with pytest.raises(ValueError, match="parts"):
        random_text(np.random.default_rng(0), kind="numerals+poetry")
    with pytest.raises(ValueError, match="no word list"):
        random_text(np.random.default_rng(0), kind="words:xx")


def test_every_festival_phrase_can_be_written_in_its_voice_encoding():
    assert set(tts._FESTIVAL_TRAIN) == set(FESTIVAL_TRAIN_VOICE_KEYS)
    for key, (language, encoding, kind, needs, _) in tts._FESTIVAL_TRAIN.items():
        assert PACKAGE_FILES[key].setup == "train" and (needs is None or PACKAGE_FILES[needs].setup == "train")
        assert f"words:{language}" in kind.split("+")
        for phrase in phrases(language):
            phrase.encode(encoding)  # UnicodeEncodeError names the phrase
            assert "\u093c" not in phrase, "festival's Hindi voice rejects the nukta"


def test_festival_pauses_become_silence_and_long_edges_are_cut():
    sr = 1000
    audio = np.full(3000, 0.01, np.float32)  # noise where festival says "pause"
    audio[1000:2000] = 0.5
    segs = "0.9 (pau)\n1.0 nil\n2.0 nil\n3.0 (pau)\n"
    out = tts._silence_pauses(audio, sr, segs)
    edge = round(tts._EDGE_PAUSE_S * sr)
    assert out.size == edge + 1100 + edge  # 0.9..2.0 s is speech, with the kept edge on either side
    assert np.all(out[:edge] == 0) and np.all(out[-edge:] == 0) and np.all(out[edge:edge + 100] == 0.01)
    assert tts._silence_pauses(audio, sr, "3.0 (pau)\n").size == 0


# ----------------------------------------------------------------------------- real engines


@pytest.fixture(scope="module")
def voices() -> list[Voice]:
    return list_voices(multilingual=True, strict=False)


@pytest.mark.slow
def test_espeak_speaks_about_a_hundred_languages_sorted_and_listed_the_same_twice(voices):
    espeak = [v for v in voices if v.engine == "espeak"]
    languages = sorted({v.params["language"] for v in espeak})
    assert len(languages) >= 80 and {"cs", "da", "hu", "de", "it", "nl", "ar", "ja", "hi", "en-us"} <= set(languages)
    assert [(v.params["language"], v.params["variant"]) for v in espeak] == sorted(
        (v.params["language"], v.params["variant"]) for v in espeak)
    assert tts._espeak_voices(True) == espeak  # probed again: same list
    english = [v for v in espeak if "text" not in v.params]
    assert english == [v for v in list_voices(("espeak",)) if v.engine == "espeak"]  # today's English list
    assert {v.params["language"] for v in english} == {v.params["language"] for v in list_voices(("espeak",))}


@pytest.mark.slow
def test_espeak_probe_keeps_languages_that_read_digits_themselves():
    exe = tts._require("espeak")
    assert tts._espeak_probe(exe, "cs") == "numerals+names+words:cs"
    assert tts._espeak_probe(exe, "ar") == "numerals"  # Arabic script: no Latin names
    assert tts._espeak_probe(exe, "he") is None  # says nothing for digits
    assert tts._espeak_probe(exe, "ne") is None  # reads digits in English
    assert tts._espeak_probe(exe, "zz") is None  # no such voice


@pytest.mark.slow
@pytest.mark.parametrize("language", ["cs", "hu", "ar", "ja"])
def test_non_english_espeak_voice_speaks_digits(voices, language):
    voice = next(v for v in voices if v.engine == "espeak" and v.params["language"] == language)
    x = said(voice, "07 12 55 31, 1984")
    assert 1.0 < x.size / 16000 < 12.0
    said(voice, random_text(np.random.default_rng(1), kind=voice.params["text"], max_s=4.0))


@pytest.mark.slow
@pytest.mark.parametrize("key", FESTIVAL_TRAIN_VOICE_KEYS)
def test_every_multilingual_festival_voice_speaks_its_text(voices, key):
    language, _, kind, needs, _ = tts._FESTIVAL_TRAIN[key]
    for package in (key, needs):
        if package and package_files(PACKAGE_FILES[package].package) is None:
            pytest.skip(f"{package} is installed by scripts/setup.sh --train, not on this machine")
    voice = next(v for v in voices if v.engine == "festival" and v.name == locate(key).name)
    assert voice.params["language"] == language and voice.params["text"] == kind
    for seed in range(3):
        said(voice, random_text(np.random.default_rng(seed), kind=kind, max_s=5.0), seed)


@pytest.mark.slow
def test_held_out_voices_stay_disjoint_from_training_in_every_language(voices):
    split = split_voices(voices)
    train, valid = split["train"], split["valid"]
    assert len(train) + len(valid) == len(voices)
    assert not {v.speaker_id for v in train} & {v.speaker_id for v in valid}
    assert not {v.params.get("variant") for v in train if v.engine == "espeak"} & {
        v.params["variant"] for v in valid if v.engine == "espeak" and v.params["language"] != "en-029"}
    assert all(v in valid for v in voices if v.params.get("language") == "en-029")
    held_languages = {v.params["language"] for v in valid if v.engine == "espeak"}
    assert held_languages == {v.params["language"] for v in voices if v.engine == "espeak"}
    for engine in ("espeak", "festival"):
        w = voice_weights([v for v in train if v.engine == engine])
        english = [("text" not in v.params) for v in train if v.engine == engine]
        assert w.sum() == pytest.approx(1.0)
        if not all(english):
            assert w[english].sum() == pytest.approx(ENGLISH_SHARE)
