"""Build the cached synthetic VAD corpus: ``<cache>/corpus-<hash>/{train,valid}/``.

Each split holds ``NNNNN.flac`` (16 kHz PCM_16), ``NNNNN.labels.npy`` (uint8, ``(ceil(N/160),)``)
and ``manifest.jsonl`` (``file``, ``labels``, ``duration`` in seconds, ``meta``). ``split.json``
at the top lists what each split may draw from.

Stages: (1) a pool of clean utterances per split: TTS items (texts and voices drawn from per-item
seeds, synthesized in a process pool) plus the split's asterisk prompts, all level-normalized
and labelled; (2) 6-20 s clips mixed with :func:`streamseq.data.mixing.make_clip` from per-clip
seeds. Results depend only on the seed and the installed voices/recordings, never on ``jobs``.

Split (seed independent, whole units only; see ``split.json``): espeak voices whose variant
hashes into the held ~15 % or whose accent is ``en-029``; the people ``rms`` (flite) and ``ked``
(festival); asterisk prompt groups worth ~15 % of the prompt audio; ~1 in 5 music and effects
recordings (by duration).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from streamseq.data.labels import frames_to_samples, speech_labels
from streamseq.data.mixing import MixConfig, NoisePool, SpeechPool, Utterance, make_clip
from streamseq.data.sources import (SR, effect_files, load_audio, music_files, real_speech_files, split_files,
                                    to_mono_16k)
from streamseq.data.text import random_text
from streamseq.data.tts import ENGINES, TTSError, Voice, list_voices, split_voices, synthesize

__all__ = ["DEFAULT_CACHE", "CORPUS_VERSION", "CLIP_S", "build_corpus", "load_manifest"]

DEFAULT_CACHE = Path(os.environ.get("STREAMSEQ_CACHE", "~/.cache/streamseq")).expanduser()
CORPUS_VERSION = 1
CLIP_S = (6.0, 20.0)
SPLITS = ("train", "valid")
_COMPLETE = "COMPLETE"
_SPEECH_RMS_DBFS = -20.0  # pool utterances: RMS over speech-labelled frames
_MEAN_UTTERANCE_S = 4.0


# ----------------------------------------------------------------------------- helpers


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(list(key))


def _normalize(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale so speech-frame RMS is -20 dBFS (peak <= 0.99); returns (int16 (N,), labels (T,))."""
    labels = speech_labels(audio)
    active = frames_to_samples(labels, audio.size)
    if active.any():
        rms = float(np.sqrt(np.mean(np.square(audio[active], dtype=np.float64))))
        gain = 10 ** (_SPEECH_RMS_DBFS / 20) / max(rms, 1e-9)
        audio = audio * min(gain, 0.99 / max(float(np.abs(audio).max()), 1e-9))
    return np.round(np.clip(audio, -1, 1) * 32767).astype(np.int16), labels


def _init_worker() -> None:
    torch.set_num_threads(1)


def _tts_item(task: tuple[Voice, str, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    voice, text, seed, split_idx, i = task
    try:
        audio, sr = synthesize(voice, text, _rng(seed, split_idx, 1, i))
    except TTSError:  # engine choked on this text: the item is dropped (deterministically)
        return np.zeros(0, np.int16), np.zeros(0, np.uint8)
    return _normalize(to_mono_16k(audio, sr))


def _file_item(path: str) -> tuple[np.ndarray, np.ndarray]:
    return _normalize(load_audio(path))


def _map(ex: Executor | None, fn: Callable, tasks: list, desc: str, progress: bool) -> list:
    """Ordered map, in ``ex`` (a process pool) or inline when ``ex`` is None."""
    if ex is None:
        it: Any = map(fn, tasks)
    else:
        it = ex.map(fn, tasks, chunksize=max(1, min(8, len(tasks) // 16)))
    return list(tqdm(it, total=len(tasks), desc=desc, disable=not progress, leave=False))


@contextlib.contextmanager
def _build_context(jobs: int) -> Iterator[Executor | None]:
    """One torch thread (bitwise-reproducible DSP) and, for ``jobs > 1``, a spawn process pool."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if jobs <= 1:
            yield None
        else:  # spawn: no fork after torch/OpenMP threads have started
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker) as ex:
                yield ex
    finally:
        torch.set_num_threads(threads)
        _POOLS.clear()


def _save_array(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, arr)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- stage 1: pools


def _build_pool(ex: Executor | None, out: Path, split_idx: int, inv: dict, hours: float, seed: int,
                progress: bool) -> None:
    """Synthesize/load the split's clean utterances and backgrounds into ``out`` (int16 arrays)."""
    if (out / _COMPLETE).exists():
        return
    out.mkdir(parents=True, exist_ok=True)
    mix = MixConfig()  # pool composition follows the clip source weights
    by_engine = {e: [v for v in inv["voices"] if v.engine == e] for e in ENGINES}
    engines = [e for e in ENGINES if by_engine[e] and mix.source_weights.get(e, 0) > 0]
    p = np.array([mix.source_weights[e] for e in engines])
    # sized as if 65 % of speech-clip time were speech (clips come out near 45 %), so that most
    # utterances are used about once
    speech_s = hours * 3600 * (1 - mix.p_nonspeech) * 0.65
    share = mix.source_weights["asterisk"] / sum(mix.source_weights.values())
    n_items = max(12, math.ceil(speech_s * (1 - share) / _MEAN_UTTERANCE_S))
    tasks, info = [], []
    for i in range(n_items):
        rng = _rng(seed, split_idx, 0, i)
        voices = by_engine[engines[int(rng.choice(len(engines), p=p / p.sum()))]]
        voice = voices[int(rng.integers(len(voices)))]
        text = random_text(rng)
        tasks.append((voice, text, seed, split_idx, i))
        info.append({"source": voice.engine, "speaker_id": voice.speaker_id, "voice": voice.name, "text": text})
    results = _map(ex, _tts_item, tasks, f"tts {out.name}", progress)
    files = inv["speech_files"]  # small corpora use a seeded subset: 2x the prompt audio they need
    n_files = min(len(files), max(20, math.ceil(2 * speech_s * share / 2.75)))
    files = [files[k] for k in sorted(_rng(seed, split_idx, 4).permutation(len(files))[:n_files])]
    results += _map(ex, _file_item, [str(f.path) for f in files], f"prompts {out.name}", progress)
    info += [{"source": "asterisk", "speaker_id": f.group, "voice": "asterisk", "text": f.name} for f in files]
    keep = [k for k, (_, lab) in enumerate(results) if lab.any()]  # drop silent/failed outputs
    if not keep:
        raise RuntimeError(f"no usable speech for {out.name}: all {len(results)} TTS/prompt items "
                           "were silent or failed")
    index, off, foff = [], 0, 0
    for k in keep:
        n, t = results[k][0].size, results[k][1].size
        index.append({**info[k], "offset": off, "length": n, "frame_offset": foff, "frames": t})
        off, foff = off + n, foff + t
    _save_array(out / "speech.npy", np.concatenate([results[k][0] for k in keep]))
    _save_array(out / "labels.npy", np.concatenate([results[k][1] for k in keep]))
    for kind in ("music", "effects"):
        recs = [(f.name, _file_item(str(f.path))[0]) for f in inv[kind]]
        _save_array(out / f"{kind}.npy", np.concatenate([a for _, a in recs] or [np.zeros(0, np.int16)]))
        offs = np.cumsum([0] + [a.size for _, a in recs]).tolist()
        (out / f"{kind}.json").write_text(json.dumps([[n, o, a.size] for (n, a), o in zip(recs, offs)]))
    (out / "speech.json").write_text(json.dumps(index))
    (out / _COMPLETE).write_text("ok\n")


_POOLS: dict[str, tuple[SpeechPool, NoisePool]] = {}


def _load_pool(pool_dir: str) -> tuple[SpeechPool, NoisePool]:
    if pool_dir not in _POOLS:
        d = Path(pool_dir)
        audio, labels = np.load(d / "speech.npy", mmap_mode="r"), np.load(d / "labels.npy", mmap_mode="r")
        utts = [Utterance(audio[u["offset"] : u["offset"] + u["length"]], u["source"], u["speaker_id"],
                          np.asarray(labels[u["frame_offset"] : u["frame_offset"] + u["frames"]]))
                for u in json.loads((d / "speech.json").read_text())]
        noise = {}
        for kind in ("music", "effects"):
            arr = np.load(d / f"{kind}.npy", mmap_mode="r")
            spans = json.loads((d / f"{kind}.json").read_text())
            noise[kind] = [(n, arr[o : o + length]) for n, o, length in spans]
        _POOLS[pool_dir] = (SpeechPool(utts), NoisePool(**noise))
    return _POOLS[pool_dir]


# ----------------------------------------------------------------------------- stage 2: clips


def _clip_item(task: tuple[str, str, int, int, int, float]) -> None:
    pool_dir, out_dir, seed, split_idx, j, duration = task
    stem = Path(out_dir) / f"{j:05d}"
    if stem.with_suffix(".json").exists():  # resumed build: already done
        return
    speech, noise = _load_pool(pool_dir)
    clip = make_clip(_rng(seed, split_idx, 2, j), speech, noise, duration)
    tmp = stem.with_name(stem.name + ".tmp.flac")
    sf.write(tmp, clip.audio, SR, subtype="PCM_16", format="FLAC")
    os.replace(tmp, stem.with_suffix(".flac"))
    _save_array(stem.with_suffix(".labels.npy"), clip.labels)
    entry = {"file": f"{j:05d}.flac", "labels": f"{j:05d}.labels.npy", "duration": round(clip.audio.size / SR, 4),
             "meta": clip.meta}
    tmp = stem.with_name(stem.name + ".tmp.json")
    tmp.write_text(json.dumps(entry, sort_keys=True))
    os.replace(tmp, stem.with_suffix(".json"))


def _durations(seed: int, split_idx: int, hours: float) -> list[float]:
    rng, out = _rng(seed, split_idx, 3), []
    while sum(out) < hours * 3600 or not out:
        out.append(round(float(rng.uniform(*CLIP_S)), 2))
    return out


# ----------------------------------------------------------------------------- public API


def _inventory() -> dict[str, dict[str, list]]:
    """What each split may use: voices and recordings, split by whole speakers/recordings."""
    voices = split_voices(list_voices())
    files = {"speech_files": split_files(real_speech_files()), "music": split_files(music_files(), 0.2),
             "effects": split_files(effect_files(), 0.2)}
    return {s: {"voices": voices[s], **{k: v[s] for k, v in files.items()}} for s in SPLITS}


def _describe(inv: dict[str, dict[str, list]]) -> dict[str, dict[str, list[str]]]:
    return {s: {"voices": [f"{v.engine}:{v.name}" for v in d["voices"]],
                "speakers": sorted({v.speaker_id for v in d["voices"]} | {f.group for f in d["speech_files"]}),
                **{k: [f"{f.path.parent.name}/{f.path.name}" for f in d[k]]
                   for k in ("speech_files", "music", "effects")}}
            for s, d in inv.items()}


def build_corpus(cache_dir: Path, *, train_hours: float, valid_hours: float, seed: int, jobs: int = 2,
                 progress: bool = True) -> Path:
    """Build (or reuse) the corpus; returns ``cache_dir/corpus-<hash>`` with ``train/`` and ``valid/``.

    ``train_hours``/``valid_hours``: total clip audio per split in hours. The hash covers the
    config, the code version and the installed voices/recordings. A finished corpus (``COMPLETE``
    marker) is returned at once; an interrupted build resumes from ``corpus-<hash>.partial``.
    Concurrent builds of the same corpus serialize on a lock file.
    """
    if train_hours <= 0 or valid_hours <= 0:
        raise ValueError(f"train_hours and valid_hours must be > 0, got {train_hours}, {valid_hours}")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    cache_dir = Path(cache_dir).expanduser()
    cache_dir.mkdir(parents=True, exist_ok=True)
    inv = _inventory()
    config = {"version": CORPUS_VERSION, "seed": int(seed), "hours": {"train": float(train_hours),
              "valid": float(valid_hours)}, "clip_s": list(CLIP_S), "inventory": _describe(inv)}
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    final = cache_dir / f"corpus-{key}"
    if (final / _COMPLETE).exists():
        return final
    with open(cache_dir / f"corpus-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / _COMPLETE).exists():  # another process finished it while we waited
            return final
        if final.exists():
            shutil.rmtree(final)
        work = cache_dir / f"corpus-{key}.partial"
        work.mkdir(exist_ok=True)
        (work / "config.json").write_text(json.dumps(config, sort_keys=True, indent=1))
        with _build_context(jobs) as ex:
            for split_idx, split in enumerate(SPLITS):
                out, pool = work / split, work / "pool" / split
                if (out / "manifest.jsonl").exists():
                    continue
                hours = config["hours"][split]
                _build_pool(ex, pool, split_idx, inv[split], hours, seed, progress)
                out.mkdir(exist_ok=True)
                durations = _durations(seed, split_idx, hours)
                tasks = [(str(pool), str(out), seed, split_idx, j, d) for j, d in enumerate(durations)]
                _map(ex, _clip_item, tasks, f"clips {split}", progress)
                parts = [out / f"{j:05d}.json" for j in range(len(durations))]
                lines = [json.dumps(json.loads(p.read_text()), sort_keys=True) for p in parts]
                (out / "manifest.tmp").write_text("\n".join(lines) + "\n")
                os.replace(out / "manifest.tmp", out / "manifest.jsonl")
                for p in parts:
                    p.unlink()
        (work / "split.json").write_text(json.dumps(config["inventory"], sort_keys=True, indent=1))
        shutil.rmtree(work / "pool", ignore_errors=True)
        (work / _COMPLETE).write_text("ok\n")
        os.replace(work, final)
    return final


def load_manifest(split_dir: Path) -> list[dict[str, Any]]:
    """Entries of ``split_dir/manifest.jsonl`` (``file``, ``labels``, ``duration`` s, ``meta``)."""
    path = Path(split_dir) / "manifest.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"expected a corpus split manifest at {path}; build it with build_corpus()")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
