"""`streamseq eval`: scorers on one frame grid, grouped metrics, Markdown tables, the CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from streamseq.tasks.vad.baselines import available_scorers, energy_scores
from streamseq.tasks.vad.evaluate import evaluate_scorers, load_split, markdown_tables
from test_training import write_split


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalset") / "valid"
    write_split(root, 6, 3)
    return root


def test_every_scorer_gives_one_score_per_10ms_frame(split):
    audio, labels, _ = load_split(split)[0]
    for name, scorer in available_scorers().items():
        assert scorer(audio).shape == labels.shape, name


def test_perfect_scorer_gets_auc_and_f1_of_one_and_tables_list_it(split):
    clips = load_split(split)
    lookup = {id(a): y.astype(float) for a, y, _ in clips}
    scorers = {"oracle": lambda a: lookup[id(a)], "inverted": lambda a: 1 - lookup[id(a)], "energy": energy_scores}
    results = evaluate_scorers(clips, scorers, ["snr_band", "not_in_meta"])
    overall = results["oracle"][("overall", "all")]
    assert overall["roc_auc"] == 1.0 and overall["f1"] == 1.0 and overall["false_alarm_rate"] == 0.0
    assert results["inverted"][("overall", "all")]["roc_auc"] == 0.0
    assert ("snr_band", "x") in results["energy"] and not any(k[0] == "not_in_meta" for k in results["energy"])
    table = markdown_tables(results)
    assert "| oracle | 1.0000 |" in table and "| inverted | 0.0000 |" in table


def test_music_only_clips_report_raw_and_segmented_false_alarms(split):
    clips = [(np.zeros(16000, np.float32), np.zeros(100, np.uint8), {"snr_band": "none"})]
    blips = np.zeros(100)
    blips[[10, 50, 51]] = 1.0  # isolated frames: raw false alarms the segmenter removes
    fa = evaluate_scorers(clips, {"blippy": lambda a: blips}, ["snr_band"])["blippy"][("nonspeech", "fa")]
    assert fa["rate"] == pytest.approx(0.03) and fa["segment_rate"] == 0.0


@pytest.mark.slow
def test_eval_cli_prints_and_writes_the_tables(split, tmp_path):
    md = tmp_path / "eval.md"
    run = subprocess.run([sys.executable, "-m", "streamseq.cli.main", "eval", "--data", str(split), "--models",
                          "vad-uni", "--no-peers", "--by", "--markdown", str(md)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "| vad-uni |" in run.stdout and "ROC-AUC" in md.read_text()
