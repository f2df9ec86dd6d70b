"""Build the cached spoken-digits corpus: ``<cache>/digits-<hash>/{train,valid}/``.

Each split holds ``NNNNN.flac`` (16 kHz PCM_16, all exactly :data:`CLIP_S` seconds) and
``manifest.jsonl`` (``file``, ``duration`` in seconds, ``meta``); ``split.json`` lists what each
split drew from. A clip is one string of 1-12 random digits in phone-like groups (3-3-4, 4-4-4,
1-3-3-4, pairs ...; :data:`GROUPINGS`), each group one utterance of digit words ("zero" or "oh"
for 0, one choice per string), all by one speaker: an English TTS voice (espeak-ng accents x
variants, flite, festival) or, in training only, the asterisk digit recordings. Groups follow a
0.1-1 s lead with 0-1 s pauses (shrunk to fit the clip), then the clip is mixed like a VAD clip
(:func:`streamseq.data.mixing.mix_speech`): clean or at 20 / 10 / 5 / 0 dB SNR over music on
hold, desktop effects or synthetic noise, with reverb, telephone band and channel augmentation.
With ``speed_perturb`` p > 0, a share p of the training strings is also resampled by a speed
factor drawn from :data:`SPEED` (:func:`~streamseq.tasks.digits.speech.resampled`: tempo, pitch
and formants together), so the six flite/festival voices and the one asterisk speaker sound like
many speakers; validation clips are drawn exactly as without it.

Meta per clip: ``digits`` ("4155550123"), ``words`` (what was said), ``groups`` and
``digit_times`` (``[start, end]`` s in the clip, from the engines' word timing:
:mod:`streamseq.tasks.digits.speech`; ``timing`` says which kind), the speaker (and ``speed``
when resampled), and the mixing meta (``snr_band``, ``background``, ...).

Equal clip lengths matter: training batches are cropped to their shortest clip, so with every
clip at 10 s (1000 frames, ``TrainConfig.max_frames``) no digit is ever cut.

Split (seed independent): validation voices are :func:`~streamseq.data.tts.split_voices`'s held-out
espeak variants and accent (en-029) and the people rms (flite) and ked (festival), and its
backgrounds are whole held-out recordings. The asterisk digits are one woman's 11 recordings,
which cannot be split by recording, so they are training data only: validation is unseen TTS voices.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from streamseq.data.labels import frame_hop, num_frames
from streamseq.data.mixing import MixConfig, NoisePool, mix_speech
from streamseq.data.sources import SR, effect_files, load_audio, music_files, split_files
from streamseq.data.tts import ENGINES, TTSError, Voice, list_voices, split_voices
from streamseq.data.workers import ordered_map, worker_pool
from streamseq.debian import MissingSystemFileError, locate
from streamseq.tasks.digits.speech import WORDS, Spoken, draw_params, human_digits, resampled, say, say_human

__all__ = ["CORPUS_VERSION", "CLIP_S", "GROUPINGS", "build_digits_corpus"]

CORPUS_VERSION = 1
CLIP_S = 10.0
SPLITS = ("train", "valid")
#: How a string of n digits is grouped (one grouping drawn uniformly per string).
GROUPINGS: dict[int, tuple[tuple[int, ...], ...]] = {
    1: ((1,),), 2: ((2,),), 3: ((3,),), 4: ((4,), (2, 2)), 5: ((5,), (2, 3), (3, 2)),
    6: ((3, 3), (2, 2, 2), (6,)), 7: ((3, 4), (4, 3), (3, 2, 2)), 8: ((4, 4), (2, 2, 2, 2), (3, 3, 2)),
    9: ((3, 3, 3), (4, 5), (3, 2, 2, 2)), 10: ((3, 3, 4), (5, 5), (2, 4, 4), (2, 2, 2, 2, 2)),
    11: ((1, 3, 3, 4), (3, 4, 4), (2, 3, 3, 3)), 12: ((4, 4, 4), (3, 3, 3, 3), (2, 2, 2, 2, 2, 2)),
}
#: Who says a string: an engine's voices (one drawn uniformly) or the asterisk recordings ("asterisk").
SOURCE_WEIGHTS = {"espeak": 0.45, "flite": 0.2, "festival": 0.2, "asterisk": 0.15}
LEAD_S, PAUSE_S, TRAIL_MIN_S = (0.1, 1.0), (0.0, 1.0), 0.3
_GROUP_GAIN_DB = (-3.0, 3.0)
_SPEECH_RMS_DBFS = -20.0
_BACKGROUND_MAX_S = 30.0
_COMPLETE = "COMPLETE"
_ATTEMPTS = 3  # speakers tried for one clip before its TTS errors are raised
#: Speed factors of the training strings' resampling (``speed_perturb``), drawn log-uniformly.
SPEED = (0.87, 1.15)


def mix_config(codec: bool) -> MixConfig:
    """The VAD corpus's channel, at fixed SNRs, every clip speech; ``codec``: ffmpeg is there."""
    return MixConfig(p_nonspeech=0.0, p_clean=0.2, snr_choices=(20.0, 10.0, 5.0, 0.0), p_codec=0.1 if codec else 0.0)


# ----------------------------------------------------------------------------- one clip
def digit_string(rng: np.random.Generator) -> tuple[str, list[list[str]]]:
    """A random string of 1-12 digits and its words, grouped by one of :data:`GROUPINGS`."""
    n = int(rng.integers(1, 13))
    digits = "".join(str(d) for d in rng.integers(0, 10, n))
    sizes = GROUPINGS[n][int(rng.integers(len(GROUPINGS[n])))]
    zero = WORDS["0"][int(rng.integers(2))]
    words = [zero if d == "0" else WORDS[d][0] for d in digits]
    edges = np.cumsum((0, *sizes)).tolist()
    return digits, [words[a:b] for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _speak(rng: np.random.Generator, inv: dict[str, Any], groups: list[list[str]]) -> tuple[list[Spoken], dict]:
    """The groups said by one speaker drawn from the split's inventory, and who that was."""
    engines = {e: [v for v in inv["voices"] if v.engine == e] for e in ENGINES}
    sources = [s for s in SOURCE_WEIGHTS if engines.get(s) or (s == "asterisk" and inv["human"])]
    p = np.array([SOURCE_WEIGHTS[s] for s in sources])
    for attempt in range(_ATTEMPTS):
        source = sources[int(rng.choice(len(sources), p=p / p.sum()))]
        if source == "asterisk":
            return [say_human(g, rng) for g in groups], {"speech_source": "asterisk", "speakers": ["asterisk:digits"],
                                                         "voice": "asterisk:digits"}
        voice: Voice = engines[source][int(rng.integers(len(engines[source])))]
        params = draw_params(voice, rng)
        try:
            spoken = [say(voice, g, params) for g in groups]
        except TTSError:
            if attempt + 1 == _ATTEMPTS:
                raise
            continue
        return spoken, {"speech_source": source, "speakers": [voice.speaker_id], "voice": f"{source}:{voice.name}",
                        "voice_params": params}
    raise AssertionError("unreachable")


def _leveled(spoken: Spoken, gain_db: float) -> np.ndarray:
    """Scale a group so its speech frames have an RMS of -20 dBFS + ``gain_db`` (peak <= 0.99)."""
    active = np.repeat(spoken.labels.astype(bool), frame_hop(SR))[: spoken.audio.size]
    x = spoken.audio[active] if active.any() else spoken.audio
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    peak = float(np.abs(spoken.audio).max())
    gain = min(10 ** ((_SPEECH_RMS_DBFS + gain_db) / 20) / max(rms, 1e-9), 0.99 / max(peak, 1e-9))
    return (spoken.audio * np.float32(gain)).astype(np.float32)


def make_digit_clip(rng: np.random.Generator, inv: dict[str, Any], noise: NoisePool, cfg: MixConfig,
                    speed_perturb: float = 0.0) -> tuple[np.ndarray, dict[str, Any]]:
    """One clip: ``(audio (N,) float32, meta)``, N = ``CLIP_S`` s; see the module docstring.

    ``speed_perturb``: the probability of resampling the speech by a factor from :data:`SPEED`
    (0: never, and no random numbers are drawn for it)."""
    digits, groups = digit_string(rng)
    spoken, who = _speak(rng, inv, groups)
    if speed_perturb > 0 and rng.random() < speed_perturb:
        factor = round(float(np.exp(rng.uniform(*np.log(SPEED)))), 2)
        spoken, who = [resampled(s, factor) for s in spoken], {**who, "speed": factor}
    n, hop = round(CLIP_S * SR), frame_hop(SR)
    while sum(s.audio.size for s in spoken) > n - TRAIL_MIN_S * SR - len(spoken) * hop:  # keep what fits
        if len(spoken) == 1:
            raise ValueError(f"one group of {len(groups[0])} digits lasts {spoken[0].audio.size / SR:.2f} s, "
                             f"longer than a {CLIP_S} s clip")
        spoken, groups = spoken[:-1], groups[:-1]
        digits = digits[: sum(len(g) for g in groups)]
    gaps = np.concatenate([[rng.uniform(*LEAD_S)], rng.uniform(*PAUSE_S, size=len(spoken) - 1)]) * SR
    room = n - TRAIL_MIN_S * SR - sum(s.audio.size for s in spoken) - len(spoken) * hop
    gaps *= min(1.0, room / max(float(gaps.sum()), 1.0))
    speech, labels = np.zeros(n, np.float32), np.zeros(num_frames(n, SR), np.uint8)
    times, spans, pos = [], [], 0
    for s, gap in zip(spoken, gaps, strict=True):
        pos = (pos + int(gap) + hop - 1) // hop * hop  # groups start on the 10 ms grid
        speech[pos : pos + s.audio.size] = _leveled(s, float(rng.uniform(*_GROUP_GAIN_DB)))
        labels[pos // hop : pos // hop + s.labels.size] |= s.labels
        times += [[round(pos / SR + a, 3), round(pos / SR + b, 3)] for a, b in s.spans]
        spans.append([times[-len(s.spans)][0], times[-1][1]])
        pos += s.audio.size
    meta = {**who, "digits": digits, "words": " ".join(" ".join(g) for g in groups), "groups": spans,
            "digit_times": times, "timing": min((s.timing for s in spoken), key=["approximate", "engine",
                                                                                   "recording"].index)}
    clip = mix_speech(rng, speech, labels, noise, cfg, source=who["speech_source"], meta=meta)
    return clip.audio, clip.meta


# ----------------------------------------------------------------------------- workers
_INVENTORY: dict[str, dict[str, Any]] = {}
_NOISE: dict[str, NoisePool] = {}


def _init_worker(inventory: dict[str, dict[str, Any]]) -> None:
    _INVENTORY.clear()
    _INVENTORY.update(inventory)
    _NOISE.clear()


def _noise(split: str) -> NoisePool:
    if split not in _NOISE:
        inv = _INVENTORY[split]
        _NOISE[split] = NoisePool(**{kind: [(f.name, load_audio(f, max_s=_BACKGROUND_MAX_S)) for f in inv[kind]]
                                     for kind in ("music", "effects")})
    return _NOISE[split]


def _clip_item(task: tuple[str, int, int, int, float]) -> None:
    out_dir, seed, split_idx, j, speed_perturb = task
    stem, split = Path(out_dir) / f"{j:05d}", Path(out_dir).name
    if stem.with_suffix(".json").exists():  # resumed build: already done
        return
    inv = _INVENTORY[split]
    audio, meta = make_digit_clip(np.random.default_rng([seed, split_idx, j]), inv, _noise(split),
                                  mix_config(inv["codec"]), speed_perturb)
    tmp = stem.with_name(stem.name + ".tmp.flac")
    sf.write(tmp, audio, SR, subtype="PCM_16", format="FLAC")
    os.replace(tmp, stem.with_suffix(".flac"))
    entry = {"file": f"{j:05d}.flac", "duration": round(audio.size / SR, 4), "meta": meta}
    stem.with_name(stem.name + ".tmp.json").write_text(json.dumps(entry, sort_keys=True))
    os.replace(stem.with_name(stem.name + ".tmp.json"), stem.with_suffix(".json"))


@contextlib.contextmanager
def _workers(jobs: int, inventory: dict[str, dict[str, Any]]) -> Iterator[Executor | None]:
    """:func:`~streamseq.data.workers.worker_pool` with ``inventory`` in every worker (and here)."""
    try:
        with worker_pool(jobs, _init_worker, (inventory,)) as ex:
            yield ex
    finally:
        _INVENTORY.clear()
        _NOISE.clear()


# ----------------------------------------------------------------------------- public API
def inventory() -> dict[str, dict[str, Any]]:
    """What each split may draw from: voices, human digits (train only), music and effects recordings."""
    voices = split_voices(list_voices())
    music, effects = split_files(music_files(), 0.2), split_files(effect_files(), 0.2)
    try:
        codec = bool(locate("ffmpeg"))
    except MissingSystemFileError:
        codec = False
    human = sorted(p.name for p in human_digits().glob("*.wav") if p.stem in set(WORDS) | {"oh"})
    return {s: {"voices": voices[s], "human": human if s == "train" else [], "music": music[s],
                "effects": effects[s], "codec": codec} for s in SPLITS}


def _describe(inv: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {s: {"voices": [f"{v.engine}:{v.name}" for v in d["voices"]], "human": d["human"], "codec": d["codec"],
                **{k: [f.path.name for f in d[k]] for k in ("music", "effects")}} for s, d in inv.items()}


def build_digits_corpus(cache_dir: Path, *, train_hours: float, valid_hours: float, seed: int,
                        speed_perturb: float = 0.0, jobs: int = 2, progress: bool = True) -> Path:
    """Build (or reuse) the digits corpus; returns ``cache_dir/digits-<hash>`` with ``train/`` and ``valid/``.

    ``*_hours``: audio per split (``ceil(hours * 3600 / CLIP_S)`` clips); ``speed_perturb``:
    the share of training strings resampled (module docstring; validation is the same either way).
    The hash covers the config, the corpus version and the installed voices and recordings; clips
    depend only on the seed, never on ``jobs``. A finished corpus (``COMPLETE``) is returned at
    once; an interrupted build resumes from ``digits-<hash>.partial``; concurrent builds serialize
    on a lock file.
    """
    if train_hours <= 0 or valid_hours <= 0 or jobs < 1 or not 0 <= speed_perturb <= 1:
        raise ValueError(f"expected train_hours > 0, valid_hours > 0, jobs >= 1 and 0 <= speed_perturb <= 1; "
                         f"received {train_hours}, {valid_hours}, {jobs}, {speed_perturb}")
    cache_dir = Path(cache_dir).expanduser()
    cache_dir.mkdir(parents=True, exist_ok=True)
    inv = inventory()
    hours = {"train": float(train_hours), "valid": float(valid_hours)}
    config = {"version": CORPUS_VERSION, "seed": int(seed), "hours": hours, "clip_s": CLIP_S,
              "inventory": _describe(inv)}
    if speed_perturb:  # absent otherwise, so corpora built before the option keep their hash
        config["speed"] = {"range": SPEED, "share": float(speed_perturb)}
    final = cache_dir / f"digits-{hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]}"
    if (final / _COMPLETE).exists():
        return final
    with open(final.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / _COMPLETE).exists():  # another process finished it while we waited
            return final
        shutil.rmtree(final, ignore_errors=True)
        work = final.with_suffix(".partial")
        work.mkdir(exist_ok=True)
        (work / "config.json").write_text(json.dumps(config, sort_keys=True, indent=1))
        with _workers(jobs, inv) as ex:
            for split_idx, split in enumerate(SPLITS):
                out = work / split
                if (out / "manifest.jsonl").exists():
                    continue
                out.mkdir(exist_ok=True)
                count = math.ceil(hours[split] * 3600 / CLIP_S)
                speed = float(speed_perturb) if split == "train" else 0.0  # validation: drawn as without it
                tasks = [(str(out), int(seed), split_idx, j, speed) for j in range(count)]
                ordered_map(ex, _clip_item, tasks, f"digits {split}", progress)
                parts = [out / f"{j:05d}.json" for j in range(count)]
                (out / "manifest.tmp").write_text("".join(p.read_text() + "\n" for p in parts))
                os.replace(out / "manifest.tmp", out / "manifest.jsonl")
                for p in parts:
                    p.unlink()
        (work / "split.json").write_text(json.dumps(config["inventory"], sort_keys=True, indent=1))
        (work / _COMPLETE).write_text("ok\n")
        os.replace(work, final)
    return final
