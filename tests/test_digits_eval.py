"""Digits evaluation: the PocketSphinx peer on real espeak-ng digit strings, digit error rate and string
accuracy by SNR band and speech source, and ``streamseq eval`` on a digits split."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from streamseq import load_model
from streamseq.cli.main import main
from streamseq.data.tts import list_voices
from streamseq.features import FeatureConfig, compute_features
from streamseq.models import ModelConfig, build_model, save_checkpoint
from streamseq.tasks import get_task
from streamseq.tasks.digits.baselines import SAMPLE_RATE, WORD_DIGIT, to_pcm16
from streamseq.tasks.digits.data import build_digits_corpus
from streamseq.tasks.digits.evaluate import evaluate_recognizers, load_split, markdown_tables, model_recognizer
from streamseq.tasks.digits.speech import say
from streamseq.tasks.digits.task import edit_distance
from test_digits import manifest

needs_pocketsphinx = pytest.mark.skipif(importlib.util.find_spec("pocketsphinx") is None,
                                        reason="pocketsphinx is not installed: pip install 'streamseq[peers]'")


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> Path:
    """The validation split of a tiny digits corpus: 4 clips of 10 s."""
    cache = tmp_path_factory.mktemp("cache")
    return build_digits_corpus(cache, train_hours=0.01, valid_hours=0.01, seed=7, jobs=1, progress=False) / "valid"


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory) -> Path:
    """An untrained digits checkpoint with the task's outputs (whatever they are) and real statistics."""
    task = get_task("digits")
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden_size=8, num_layers=1, n_outputs=len(task.labels),
                                    activation=task.activation), FeatureConfig())
    feats = compute_features(np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32))
    model.set_normalization(feats.mean(0), feats.std(0))
    model.set_task("digits", task.labels, task.default_task_config())
    return save_checkpoint(model.eval(), tmp_path_factory.mktemp("run") / "digits.pt")


def test_pcm_is_16khz_int16_whatever_the_input_rate():
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000).astype(np.float32)  # 1 s at 8 kHz
    pcm = to_pcm16(tone, 8000)
    assert pcm.dtype == np.int16 and pcm.size == SAMPLE_RATE and 15000 < np.abs(pcm).max() < 17500
    assert np.array_equal(to_pcm16(np.array([1.5, -1.5, 0.5], np.float32), SAMPLE_RATE), [32767, -32768, 16384])
    with pytest.raises(ValueError, match=r"expected a mono clip of shape \(N,\); received shape \(10, 2\)"):
        to_pcm16(np.zeros((10, 2), np.float32), SAMPLE_RATE)


@pytest.mark.slow
@needs_pocketsphinx
def test_pocketsphinx_gets_most_digits_of_slow_clean_espeak_strings_right():
    from streamseq.tasks.digits.baselines import pocketsphinx_recognizer

    recognize = pocketsphinx_recognizer()
    voices = {v.name: v for v in list_voices(("espeak",))}
    strings = [["three", "four", "six", "four", "two"], ["four", "oh", "five", "one", "seven"],
               ["one", "six", "seven", "zero", "one"]]
    edits = digits = exact = 0
    for name in ("en-us+m1", "en-us+f1"):
        for words in strings:
            spoken = say(voices[name], words, {"speed_wpm": 120, "pitch": 50, "amplitude": 70})
            ref = "".join(WORD_DIGIT[w] for w in words)
            hyp = recognize(spoken.audio, SAMPLE_RATE)
            assert set(hyp) <= set("0123456789")
            edits, digits, exact = edits + edit_distance(ref, hyp), digits + len(ref), exact + (ref == hyp)
    # measured: 6 edits in 30 digits (0.2), 3 of 6 strings exact; a guesser would be near 0.9 and 0 exact
    assert edits / digits < 0.5 and exact >= 2


@pytest.mark.slow
@needs_pocketsphinx
def test_the_tables_have_a_row_per_system_and_a_column_per_snr_band(split, digits_model):
    from streamseq.tasks.digits.baselines import pocketsphinx_recognizer

    clips = load_split(split)
    truth = {id(a): m["digits"] for a, m in clips}
    recognizers = {"oracle": lambda a, rate: truth[id(a)], "silent": lambda a, rate: "",
                   "model": model_recognizer(load_model(digits_model)), "pocketsphinx": pocketsphinx_recognizer()}
    results = evaluate_recognizers(clips, recognizers)
    bands = {m["snr_band"] for _, m in clips}
    for name, groups in results.items():
        overall = groups[("overall", "all")]
        assert overall["clips"] == len(clips) == 4 and overall["digits"] == sum(len(m["digits"]) for _, m in clips)
        assert {v for k, v in groups if k == "snr_band"} == bands, name
        assert sum(groups[("snr_band", b)]["clips"] for b in bands) == 4 and overall["rtf"] > 0
        assert {v for k, v in groups if k == "speech_source"} == {m["speech_source"] for _, m in clips}
    assert results["oracle"][("overall", "all")]["digit_error_rate"] == 0.0
    assert results["oracle"][("overall", "all")]["string_accuracy"] == 1.0
    assert results["silent"][("overall", "all")]["digit_error_rate"] == 1.0  # every digit deleted
    table = markdown_tables(results)
    for title in ("Digit error rate", "String accuracy"):
        block = table.split(f"**{title}")[1].split("\n\n")[1].splitlines()
        assert len(block) == 2 + 4 and all(f"SNR {b}" in block[0] for b in bands)
        assert [row.split(" | ")[0] for row in block[2:]] == ["| oracle", "| silent", "| model", "| pocketsphinx"]
        assert all(row.count("%") == 1 + len(bands) for row in block[2:])


@pytest.mark.slow
@needs_pocketsphinx
def test_eval_cli_scores_a_digits_model_and_pocketsphinx_on_a_digits_split(split, digits_model, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["eval", "--data", str(split), "--models", str(digits_model), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| run" in text and "/digits |" in text and "| pocketsphinx |" in text
    assert "**Digit error rate by speech_source**" in text
    results = json.loads(out.read_text())[str(split)]
    assert set(results) == {f"{digits_model.parent.name}/digits", "pocketsphinx"}
    bands = {e["meta"]["snr_band"] for e in manifest(split)}
    assert {k for k in results["pocketsphinx"] if k.startswith("snr_band=")} == {f"snr_band={b}" for b in bands}


def test_eval_refuses_models_of_different_tasks(digits_model, capsys):
    assert main(["eval", "--data", "unused", "--models", "vad-uni", str(digits_model), "--no-peers"]) == 2
    err = capsys.readouterr().err
    assert "different tasks" in err and "vad-uni: vad" in err and f"{digits_model}: digits" in err
