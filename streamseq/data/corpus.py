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
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from streamseq.data.labels import frames_to_samples, speech_labels
from streamseq.data.mixing import MixConfig, NoisePool, SpeechPool, Utterance, make_clip
from streamseq.data.recordings import COLLECTIONS, collection_files, screen_speech
from streamseq.data.render import DEFAULT_CACHE
from streamseq.data.sources import (
    SR,
    SourceFile,
    effect_files,
    load_audio,
    music_files,
    real_speech_files,
    split_files,
    to_mono_16k,
)
from streamseq.data.text import random_text
from streamseq.data.tts import ENGINES, TTSError, Voice, list_voices, split_voices, synthesize, voice_weights
from streamseq.data.workers import ordered_map, worker_pool

__all__ = ["DEFAULT_CACHE", "CORPUS_VERSION", "CLIP_S", "build_corpus", "load_manifest"]

CORPUS_VERSION = 4
CLIP_S = (6.0, 20.0)
SPLITS = ("train", "valid", "real")
#: The real-recordings validation split: held-out human speakers over held-out music/effects/noise
#: at the SNRs the maintainers' real set uses, no TTS and no simulated channel.
REAL_MIX = MixConfig(p_nonspeech=0.2, p_clean=0.2, snr_choices=(20.0, 10.0, 5.0, 0.0), p_telephone=0.0,
                     p_reverb=0.0, source_weights={"recorded": 1.0},
                     background_weights={"music": 0.4, "effects": 0.3, "noise": 0.3}, augment=False)
_BACKGROUND_MAX_S = 30.0  # excerpt of each music/effects recording in a pool
_SCREEN_MAX_SPEECH_S = 0.5  # a background in which Silero finds more speech than this is dropped
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


def _tts_item(task: tuple[Voice, str, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    voice, text, seed, split_idx, i = task
    try:
        audio, sr = synthesize(voice, text, _rng(seed, split_idx, 1, i))
    except TTSError:  # engine choked on this text: the item is dropped (deterministically)
        return np.zeros(0, np.int16), np.zeros(0, np.uint8)
    return _normalize(to_mono_16k(audio, sr))


def _file_item(source: str | SourceFile) -> tuple[np.ndarray, np.ndarray]:
    try:
        return _normalize(load_audio(source))
    except sf.LibsndfileError:  # a broken file in a package: dropped like a silent one
        return np.zeros(0, np.int16), np.zeros(0, np.uint8)


_SCREENER: list = []  # Silero VAD, loaded once per process


def _background_item(task: tuple[SourceFile, bool]) -> tuple[np.ndarray, float | str]:
    """A background recording (at most ``_BACKGROUND_MAX_S`` of it) as int16, and the seconds of
    speech Silero VAD finds in it when ``screen`` (else 0), or why it could not be read."""
    source, screen = task
    try:
        audio = load_audio(source, max_s=_BACKGROUND_MAX_S)
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:  # a broken file in a package
        return np.zeros(0, np.int16), f"unreadable: {exc}"
    speech_s = 0.0
    if screen:
        if not _SCREENER:
            from silero_vad import load_silero_vad

            _SCREENER.append(load_silero_vad(onnx=True))
        speech_s = screen_speech(audio, _SCREENER[0])
    return _normalize(audio)[0], speech_s


@contextlib.contextmanager
def _build_context(jobs: int) -> Iterator[Executor | None]:
    """:func:`worker_pool` for one build; the utterance/background pools it loaded are dropped after."""
    try:
        with worker_pool(jobs) as ex:
            yield ex
    finally:
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
    mix = _mix_for(out.name)  # pool composition follows the clip source weights
    by_engine = {e: [v for v in inv["voices"] if v.engine == e] for e in ENGINES}
    engines = [e for e in ENGINES if by_engine[e] and mix.source_weights.get(e, 0) > 0]
    p = np.array([mix.source_weights[e] for e in engines])
    p_voice = {e: voice_weights(by_engine[e]) for e in engines}  # English-only lists: every voice alike
    # sized as if 65 % of speech-clip time were speech (clips come out near 45 %), so that most
    # utterances are used about once
    speech_s = hours * 3600 * (1 - mix.p_nonspeech) * 0.65
    total = sum(w for k, w in mix.source_weights.items() if k in engines or k == "asterisk"
                or (k == "recorded" and inv["recorded"]))
    share = mix.source_weights.get("asterisk", 0.0) / total
    rec_share = mix.source_weights.get("recorded", 0.0) / total if inv["recorded"] else 0.0
    n_items = math.ceil(speech_s * (1 - share - rec_share) / _MEAN_UTTERANCE_S) if engines else 0
    n_items = max(12, n_items) if engines else 0
    tasks, info = [], []
    for i in range(n_items):
        rng = _rng(seed, split_idx, 0, i)
        engine = engines[int(rng.choice(len(engines), p=p / p.sum()))]
        voices, pv = by_engine[engine], p_voice[engine]
        k = rng.integers(len(voices)) if np.all(pv == pv[0]) else rng.choice(len(voices), p=pv)
        voice = voices[int(k)]
        text = random_text(rng, kind=voice.params.get("text", "en"))
        tasks.append((voice, text, seed, split_idx, i))
        info.append({"source": voice.engine, "speaker_id": voice.speaker_id, "voice": voice.name, "text": text})
    results = ordered_map(ex, _tts_item, tasks, f"tts {out.name}", progress)
    files = inv["speech_files"]  # small corpora use a seeded subset: 2x the prompt audio they need
    n_files = min(len(files), max(20, math.ceil(2 * speech_s * share / 2.75)))
    n_files = n_files if mix.source_weights.get("asterisk") else 0
    files = [files[k] for k in sorted(_rng(seed, split_idx, 4).permutation(len(files))[:n_files])]
    recorded = inv["recorded"]  # other human recordings: every collection equally likely, 2x what is needed
    if recorded and mix.source_weights.get("recorded"):
        sizes = Counter(f.group.split(":")[0] for f in recorded)
        w = np.array([1.0 / sizes[f.group.split(":")[0]] for f in recorded])
        n_rec = min(len(recorded), max(20, math.ceil(2 * speech_s * rec_share / 1.5)))
        pick = _rng(seed, split_idx, 5).choice(len(recorded), size=n_rec, replace=False, p=w / w.sum())
        recorded = [recorded[k] for k in sorted(pick)]
    else:
        recorded = []
    results += ordered_map(ex, _file_item, [str(f.path) for f in files], f"prompts {out.name}", progress)
    info += [{"source": "asterisk", "speaker_id": f.group, "voice": "asterisk", "text": f.name} for f in files]
    results += ordered_map(ex, _file_item, recorded, f"recordings {out.name}", progress)
    info += [{"source": "recorded", "speaker_id": f.group, "voice": f.group.split(":")[0], "text": f.name}
             for f in recorded]
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
    dropped = []
    for kind in ("music", "effects"):
        found = ordered_map(ex, _background_item, [(f, inv["screen"]) for f in inv[kind]], f"{kind} {out.name}",
                            progress)
        recs = []
        for f, (audio, speech_s) in zip(inv[kind], found, strict=True):
            if isinstance(speech_s, str) or speech_s > _SCREEN_MAX_SPEECH_S or not audio.size:
                reason = (speech_s if isinstance(speech_s, str)
                          else f"speech: {speech_s:.2f} s" if audio.size else "empty")
                dropped.append({"file": _label(f), "why": reason})
            else:
                recs.append((f.name, audio))
        _save_array(out / f"{kind}.npy", np.concatenate([a for _, a in recs] or [np.zeros(0, np.int16)]))
        offs = np.cumsum([0] + [a.size for _, a in recs]).tolist()
        spans = [[n, o, a.size] for (n, a), o in zip(recs, offs[:-1], strict=True)]
        (out / f"{kind}.json").write_text(json.dumps(spans))
    (out / "screened_out.json").write_text(json.dumps(dropped, indent=1))
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
    clip = make_clip(_rng(seed, split_idx, 2, j), speech, noise, duration, _mix_for(Path(out_dir).name))
    tmp = stem.with_name(stem.name + ".tmp.flac")
    sf.write(tmp, clip.audio, SR, subtype="PCM_16", format="FLAC")
    os.replace(tmp, stem.with_suffix(".flac"))
    _save_array(stem.with_suffix(".labels.npy"), clip.labels)
    entry = {"file": f"{j:05d}.flac", "labels": f"{j:05d}.labels.npy", "duration": round(clip.audio.size / SR, 4),
             "meta": clip.meta}
    tmp = stem.with_name(stem.name + ".tmp.json")
    tmp.write_text(json.dumps(entry, sort_keys=True))
    os.replace(tmp, stem.with_suffix(".json"))


def _mix_for(split: str) -> MixConfig:
    return REAL_MIX if split == "real" else MixConfig()


def _durations(seed: int, split_idx: int, hours: float) -> list[float]:
    rng, out = _rng(seed, split_idx, 3), list[float]()
    while sum(out) < hours * 3600 or not out:
        out.append(round(float(rng.uniform(*CLIP_S)), 2))
    return out


# ----------------------------------------------------------------------------- public API


def _recorded() -> dict[str, dict[str, list[SourceFile]]]:
    """Files of :data:`COLLECTIONS` by kind and split (``"train"`` or ``"real"``, the held-out units)."""
    out: dict[str, dict[str, list[SourceFile]]] = {k: {"train": [], "real": []} for k in ("speech", "music", "effects")}
    for collection in COLLECTIONS:
        for f, held in collection_files(collection):
            out[collection.kind]["real" if held else "train"].append(f)
    return out


def _inventory(real: bool) -> dict[str, dict[str, Any]]:
    """What each split may use: voices and recordings, split by whole speakers/recordings.

    With ``real`` the Debian recordings of :mod:`streamseq.data.recordings` join training, their
    held-out units make the ``real`` split (and its music/effects are also in ``valid``), and
    every background is screened for speech.
    """
    voices = split_voices(list_voices(multilingual=real))
    files = {"speech_files": split_files(real_speech_files()), "music": split_files(music_files(), 0.2),
             "effects": split_files(effect_files(), 0.2)}
    inv: dict[str, dict[str, Any]] = {s: {"voices": voices[s], **{k: v[s] for k, v in files.items()}, "recorded": [],
                                          "screen": real} for s in ("train", "valid")}
    if real:
        rec = _recorded()
        inv["train"].update(recorded=rec["speech"]["train"], music=inv["train"]["music"] + rec["music"]["train"],
                            effects=inv["train"]["effects"] + rec["effects"]["train"])
        inv["valid"].update(music=inv["valid"]["music"] + rec["music"]["real"],
                            effects=inv["valid"]["effects"] + rec["effects"]["real"])
        inv["real"] = {"voices": [], "speech_files": [], "recorded": rec["speech"]["real"],
                       "music": rec["music"]["real"], "effects": rec["effects"]["real"], "screen": True}
    return inv


def _label(f: SourceFile) -> str:
    return f"{f.path.name}/{f.member}" if f.member else f"{f.path.parent.name}/{f.path.name}"


def _describe(inv: dict[str, dict[str, Any]]) -> dict[str, dict[str, list[str]]]:
    return {s: {"voices": [f"{v.engine}:{v.name}" for v in d["voices"]],
                "speakers": sorted({v.speaker_id for v in d["voices"]} | {f.group for f in d["speech_files"]}
                                   | {f.group for f in d["recorded"]}),
                **{k: [_label(f) for f in d[k]] for k in ("speech_files", "recorded", "music", "effects")}}
            for s, d in inv.items()}


def build_corpus(cache_dir: Path, *, train_hours: float, valid_hours: float, seed: int, real_hours: float = 0.0,
                 jobs: int = 2, progress: bool = True) -> Path:
    """Build (or reuse) the corpus; returns ``cache_dir/corpus-<hash>`` with ``train/``, ``valid/``
    and, when ``real_hours > 0``, ``real/``.

    ``train_hours``/``valid_hours``/``real_hours``: total clip audio per split in hours.
    ``real_hours = 0`` leaves the recordings of ``scripts/setup.sh --train`` out entirely (TTS,
    asterisk English prompts, music on hold and desktop sounds only) and the TTS speaks English;
    with ``real_hours > 0`` it speaks every language of ``list_voices(multilingual=True)``, whose
    festival voices also come from ``setup.sh --train`` (missing ones raise). The hash covers the
    config, the code version and the installed voices/recordings. A finished corpus (``COMPLETE``
    marker) is returned at once; an interrupted build resumes from ``corpus-<hash>.partial``.
    Concurrent builds of the same corpus serialize on a lock file.
    """
    if train_hours <= 0 or valid_hours <= 0 or real_hours < 0:
        raise ValueError(f"train_hours and valid_hours must be > 0 and real_hours >= 0, got {train_hours}, "
                         f"{valid_hours}, {real_hours}")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    cache_dir = Path(cache_dir).expanduser()
    cache_dir.mkdir(parents=True, exist_ok=True)
    inv = _inventory(real_hours > 0)
    hours = {"train": float(train_hours), "valid": float(valid_hours), "real": float(real_hours)}
    config: dict[str, Any] = {"version": CORPUS_VERSION, "seed": int(seed), "hours": {k: hours[k] for k in inv},
              "clip_s": list(CLIP_S), "inventory": _describe(inv)}
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
                if split not in inv:
                    continue
                out, pool = work / split, work / "pool" / split
                if (out / "manifest.jsonl").exists():
                    continue
                hours = config["hours"][split]
                _build_pool(ex, pool, split_idx, inv[split], hours, seed, progress)
                out.mkdir(exist_ok=True)
                durations = _durations(seed, split_idx, hours)
                tasks = [(str(pool), str(out), seed, split_idx, j, d) for j, d in enumerate(durations)]
                ordered_map(ex, _clip_item, tasks, f"clips {split}", progress)
                parts = [out / f"{j:05d}.json" for j in range(len(durations))]
                lines = [json.dumps(json.loads(p.read_text()), sort_keys=True) for p in parts]
                (out / "manifest.tmp").write_text("\n".join(lines) + "\n")
                os.replace(out / "manifest.tmp", out / "manifest.jsonl")
                for p in parts:
                    p.unlink()
        screened = {s: json.loads((work / "pool" / s / "screened_out.json").read_text()) for s in inv}
        (work / "split.json").write_text(json.dumps({**config["inventory"], "screened_out": screened},
                                                    sort_keys=True, indent=1))
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
