"""A tiny real corpus: layout, determinism across builds/jobs, caching, resume, disjoint split."""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from streamseq.data.corpus import build_corpus, load_manifest

HOURS = dict(train_hours=0.01, valid_hours=0.005)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    a = build_corpus(tmp_path_factory.mktemp("a"), seed=11, jobs=1, progress=False, **HOURS)
    b = build_corpus(tmp_path_factory.mktemp("b"), seed=11, jobs=2, progress=False, **HOURS)
    return a, b


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_layout_audio_and_labels(built):
    root = built[0]
    assert root.name.startswith("corpus-") and (root / "COMPLETE").exists()
    for split, hours in (("train", HOURS["train_hours"]), ("valid", HOURS["valid_hours"])):
        entries = load_manifest(root / split)
        assert entries and sum(e["duration"] for e in entries) >= hours * 3600
        for e in entries:
            assert set(e) == {"file", "labels", "duration", "meta"}
            info = sf.info(str(root / split / e["file"]))
            assert (info.samplerate, info.channels, info.subtype, info.format) == (16000, 1, "PCM_16", "FLAC")
            assert 6.0 <= e["duration"] <= 20.0 and info.frames == round(e["duration"] * 16000)
            labels = np.load(root / split / e["labels"])
            assert labels.dtype == np.uint8 and labels.shape == (math.ceil(info.frames / 160),)
            meta = e["meta"]
            assert meta["snr_band"] in ("clean", "-5..0", "0..10", "10..20", "20..30", "none")
            assert meta["background"] in ("music", "effects", "noise", "silence")
            assert meta["speech_source"] in ("espeak", "flite", "festival", "asterisk", "none")
            assert (meta["speech_source"] == "none") == (labels.sum() == 0)


@pytest.mark.slow
def test_same_seed_is_byte_identical_regardless_of_jobs(built):
    a, b = built
    assert a.name == b.name
    fa, fb = files_of(a), files_of(b)
    assert fa.keys() == fb.keys()
    for name in fa:
        if name.endswith(("manifest.jsonl", ".labels.npy", ".flac")):
            assert fa[name] == fb[name], name


@pytest.mark.slow
def test_different_seed_gives_a_different_corpus(built, tmp_path):
    c = build_corpus(tmp_path, seed=12, jobs=1, progress=False, train_hours=0.005, valid_hours=0.005)
    assert c.name != built[0].name
    assert (c / "train" / "manifest.jsonl").read_bytes() != (built[0] / "train" / "manifest.jsonl").read_bytes()


@pytest.mark.slow
def test_second_call_returns_cached(built):
    root = built[0]
    t0 = time.perf_counter()
    again = build_corpus(root.parent, seed=11, jobs=2, progress=False, **HOURS)
    assert again == root and time.perf_counter() - t0 < 5.0


@pytest.mark.slow
def test_interrupted_build_resumes_to_the_same_result(built, tmp_path):
    ref = built[0]
    partial = tmp_path / (ref.name + ".partial")
    shutil.copytree(ref, partial)
    (partial / "COMPLETE").unlink()
    shutil.rmtree(partial / "valid")  # valid never started
    train = partial / "train"
    (train / "manifest.jsonl").unlink()  # train clips written, manifest not yet
    for e in load_manifest(ref / "train"):
        (train / e["file"]).with_suffix("").with_suffix(".json").write_text(json.dumps(e, sort_keys=True))
    os.remove(train / "00001.flac")  # a clip lost mid-write: its .json must be gone too
    os.remove(train / "00001.json")
    out = build_corpus(tmp_path, seed=11, jobs=1, progress=False, **HOURS)
    assert out == tmp_path / ref.name and not partial.exists()
    assert files_of(out) == files_of(ref)


@pytest.mark.slow
def test_train_and_valid_are_disjoint(built):
    root = built[0]
    split = json.loads((root / "split.json").read_text())
    for key in ("speakers", "voices", "speech_files", "music", "effects"):
        assert split["train"][key] and split["valid"][key], key
        assert not set(split["train"][key]) & set(split["valid"][key]), key
    valid_engines = {v.split(":")[0] for v in split["valid"]["voices"]}
    assert valid_engines == {"espeak", "flite", "festival"}
    used = {s: {sp for e in load_manifest(root / s) for sp in e["meta"]["speakers"]} for s in ("train", "valid")}
    assert used["train"] <= set(split["train"]["speakers"]) and used["valid"] <= set(split["valid"]["speakers"])
    names = {s: {n for e in load_manifest(root / s) for n in e["meta"]["background_names"]}
             for s in ("train", "valid")}
    recorded = {s: {Path(f).stem for f in split[s]["music"] + split[s]["effects"]} for s in ("train", "valid")}
    assert not names["train"] & recorded["valid"] and not names["valid"] & recorded["train"]


def test_bad_arguments_and_missing_manifest(tmp_path):
    with pytest.raises(ValueError, match="train_hours"):
        build_corpus(tmp_path, train_hours=0, valid_hours=0.1, seed=0)
    with pytest.raises(FileNotFoundError, match="manifest"):
        load_manifest(tmp_path)
