"""Mix clean utterances and backgrounds into labelled training clips (16 kHz mono float32).

Signal chain of a speech clip (all linear, so SNR and labels stay exact):
utterances placed on the 10 ms grid with 0.2-3 s pauses -> optional reverb (exponentially
decaying noise RIR) on the speech -> optional telephone band (300-3400 Hz, 8 kHz round trip)
applied to speech and background separately -> background scaled to the SNR -> sum -> one gain
so the peak sits at ``gain_dbfs``. Labels come from the dry utterances only.

:func:`make_clip` does all of it; :func:`mix_speech` is the chain after the placing, for
callers that place their own speech (the digits corpus).

SNR (dB) = 10 log10(mean(speech^2 over speech-active samples) / mean(background^2 over the clip)),
both measured after reverb/telephone processing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torchaudio.functional as AF

from streamseq.data.augment import band_limit, clip_and_offset, codec_roundtrip, random_eq
from streamseq.data.labels import frame_hop, frames_to_samples, num_frames, speech_labels
from streamseq.data.sources import NOISE_KINDS, SR, synthetic_noise

__all__ = ["Utterance", "SpeechPool", "NoisePool", "MixConfig", "Clip", "SNR_BANDS", "make_clip",
           "snr_band", "telephone", "reverberate", "mix_speech"]

SNR_BANDS = ("clean", "-5..0", "0..10", "10..20", "20..30", "none")  # "none": non-speech clip
_PEAK_MAX = 32767 / 32768  # largest PCM_16 sample


def _as_float(a: np.ndarray) -> np.ndarray:
    """float32 view of float audio, or int16 PCM scaled by 1/32768."""
    a = np.asarray(a)
    return (a.astype(np.float32) / np.float32(32768.0)) if a.dtype == np.int16 else a.astype(np.float32)


@dataclass(frozen=True)
class Utterance:
    """One clean utterance. ``audio``: (N,) float at 16 kHz, or int16 (scaled by 1/32768)."""

    audio: np.ndarray
    source: str  # "espeak" | "flite" | "festival" | "asterisk" | "recorded"
    speaker_id: str
    labels: np.ndarray | None = None  # (ceil(N/160),) uint8; computed when None

    def samples(self) -> np.ndarray:
        return _as_float(self.audio)

    def frame_labels(self) -> np.ndarray:
        return self.labels if self.labels is not None else speech_labels(self.samples(), SR)


class SpeechPool:
    """Utterances indexed by source."""

    def __init__(self, utterances: Sequence[Utterance]) -> None:
        self.utterances = list(utterances)
        self.by_source: dict[str, list[int]] = {}
        self.by_collection: dict[str, list[int]] = {}  # recorded speech by package (speaker ids "collection:unit")
        for i, u in enumerate(self.utterances):
            self.by_source.setdefault(u.source, []).append(i)
            if u.source == "recorded":
                self.by_collection.setdefault(u.speaker_id.split(":")[0], []).append(i)


@dataclass
class NoisePool:
    """Background recordings at 16 kHz: ``music``/``effects`` are lists of (name, audio (N,)),
    audio float or int16 PCM."""

    music: list[tuple[str, np.ndarray]] = field(default_factory=list)
    effects: list[tuple[str, np.ndarray]] = field(default_factory=list)


@dataclass(frozen=True)
class MixConfig:
    """Probabilities and ranges (seconds, dB) for :func:`make_clip`."""

    p_nonspeech: float = 0.25
    p_clean: float = 0.10  # of speech clips
    p_telephone: float = 0.20  # asterisk speech clips use max(p_telephone, 0.5)
    p_reverb: float = 0.25
    p_two_noises: float = 0.3
    snr_db: tuple[float, float] = (-5.0, 30.0)
    snr_choices: tuple[float, ...] = ()  # when given, SNRs are drawn from these instead of the range
    gain_dbfs: tuple[float, float] = (-45.0, 0.0)
    pause_s: tuple[float, float] = (0.2, 3.0)
    lead_s: tuple[float, float] = (0.1, 1.5)  # leading and trailing non-speech
    rt60_s: tuple[float, float] = (0.2, 0.8)
    utterance_gain_db: tuple[float, float] = (-6.0, 3.0)
    source_weights: dict[str, float] = field(default_factory=lambda: {
        "espeak": 0.4, "flite": 0.2, "festival": 0.15, "asterisk": 0.25, "recorded": 0.6})
    background_weights: dict[str, float] = field(default_factory=lambda: {
        "music": 0.35, "effects": 0.25, "noise": 0.4})
    # augmentation (``augment=False`` turns all of it off): a second background under the first,
    # lower-rate content, random EQ and tilt, a low-bit-rate codec round trip, clipping, DC offset
    augment: bool = True
    p_second_background: float = 0.2
    p_bandlimit: float = 0.25
    p_eq: float = 0.3
    p_codec: float = 0.1
    p_clipping: float = 0.05
    p_dc: float = 0.05


@dataclass
class Clip:
    """``audio`` (N,) float32, ``labels`` (ceil(N/160),) uint8, ``meta``; with ``keep_parts``
    also the scaled ``speech`` and ``noise`` components (``audio == speech + noise``)."""

    audio: np.ndarray
    labels: np.ndarray
    meta: dict[str, Any]
    speech: np.ndarray | None = None
    noise: np.ndarray | None = None


def snr_band(snr_db: float | None) -> str:
    """Band name for an SNR in dB (None -> "clean")."""
    if snr_db is None:
        return "clean"
    for lo, name in ((20, "20..30"), (10, "10..20"), (0, "0..10")):
        if snr_db >= lo:
            return name
    return "-5..0"


def _choice(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = [k for k, w in weights.items() if w > 0]
    if not names:
        raise ValueError(f"no option with positive weight in {weights}")
    p = np.array([weights[k] for k in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _biquad(t: torch.Tensor, sr: int, cutoff: float, kind: str, q: float = 0.707) -> torch.Tensor:
    """RBJ low/high-pass biquad *without* the output clamp of torchaudio's ``*_biquad`` helpers."""
    w0 = 2 * np.pi * cutoff / sr
    alpha, cos = np.sin(w0) / (2 * q), np.cos(w0)
    b = [(1 - cos) / 2, 1 - cos, (1 - cos) / 2] if kind == "low" else [(1 + cos) / 2, -1 - cos, (1 + cos) / 2]
    a = [1 + alpha, -2 * cos, 1 - alpha]
    return AF.lfilter(t, torch.tensor(a, dtype=t.dtype), torch.tensor(b, dtype=t.dtype), clamp=False)


def telephone(x: np.ndarray, sr: int = SR) -> np.ndarray:
    """Telephone channel (linear): 8 kHz round trip (sharp ~3.6 kHz band limit) + 300-3400 Hz biquads."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
    kw = dict(lowpass_filter_width=16, rolloff=0.9)
    t = AF.resample(AF.resample(t, sr, 8000, **kw), 8000, sr, **kw)[: x.shape[0]]
    t = _biquad(_biquad(t, sr, 300.0, "high"), sr, 3400.0, "low")
    out = np.zeros(x.shape[0], dtype=np.float32)
    out[: t.shape[0]] = t.numpy()
    return out


def reverberate(x: np.ndarray, rng: np.random.Generator, rt60_s: float, sr: int = SR) -> np.ndarray:
    """Convolve with a synthetic RIR (direct path + exponentially decaying noise), same length."""
    n_rir = int(rt60_s * sr)
    t = np.arange(n_rir) / sr
    rir = rng.standard_normal(n_rir) * np.exp(-6.9078 * t / rt60_s)  # -60 dB at rt60
    rir[: int(0.002 * sr)] = 0.0  # 2 ms pre-delay before the tail
    rir *= 10 ** (rng.uniform(-12, 0) / 20) / np.sqrt(np.sum(rir**2) + 1e-12)  # direct-to-reverb
    rir[0] = 1.0
    n = x.shape[0] + n_rir - 1
    nfft = 1 << (n - 1).bit_length()
    y = np.fft.irfft(np.fft.rfft(x, nfft) * np.fft.rfft(rir, nfft), nfft)[: x.shape[0]]
    return y.astype(np.float32)


def _fill(
    rng: np.random.Generator, items: list[tuple[str, np.ndarray]], n: int, gaps: bool
) -> tuple[np.ndarray, list[str]]:
    """Concatenate randomly chosen recordings (first cut at a random offset) to ``n`` samples."""
    out, used, pos = np.zeros(n, dtype=np.float32), list[str](), 0
    while pos < n:
        name, audio = items[int(rng.integers(len(items)))]
        if not used and audio.size > 1:
            audio = audio[int(rng.integers(audio.size)) :]
        take = min(audio.size, n - pos)
        out[pos : pos + take] = _as_float(audio[:take])
        used.append(name)
        pos += take + (int(rng.uniform(0.0, 1.5) * SR) if gaps else 0)
    return out, sorted(set(used))


def _background(
    rng: np.random.Generator, kind: str, pool: NoisePool, n: int, cfg: MixConfig
) -> tuple[np.ndarray, list[str]]:
    """Background of ``n`` samples (unscaled) and the names of what went into it."""
    dur = n / SR
    x: np.ndarray | float
    if kind == "music" and pool.music:
        x, names = _fill(rng, pool.music, n, gaps=False)
    elif kind == "effects" and pool.effects:
        x, names = _fill(rng, pool.effects, n, gaps=True)
    elif kind == "silence":
        x, names = synthetic_noise("silence", rng, dur), ["silence"]
    else:
        kinds = [k for k in NOISE_KINDS if k != "silence"]
        count = 1 + int(rng.random() < cfg.p_two_noises)
        names = sorted({kinds[int(i)] for i in rng.integers(len(kinds), size=count)})
        x = sum(synthetic_noise(k, rng, dur) * 10 ** (rng.uniform(-10, 0) / 20) for k in names)
    floor = synthetic_noise("silence", rng, dur)  # keeps gaps in effects from being digital zero
    return (np.asarray(x, dtype=np.float32)[:n] + floor[:n]), names


def _place_speech(
    rng: np.random.Generator, pool: SpeechPool, source: str, n: int, cfg: MixConfig
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Utterances of ``source`` on the 10 ms grid: (speech (n,), labels (T,), speaker ids)."""
    hop = frame_hop(SR)
    speech, labels = np.zeros(n, dtype=np.float32), np.zeros(num_frames(n, SR), dtype=np.uint8)
    ids, speakers = pool.by_source[source], list[str]()
    if source == "recorded":  # one package per clip, like one recording session, drawn with weight
        collections = sorted(pool.by_collection)  # sqrt(utterances): a 12-file package is not a 2000-file one
        weights = np.sqrt([len(pool.by_collection[c]) for c in collections])
        ids = pool.by_collection[collections[int(rng.choice(len(collections), p=weights / weights.sum()))]]
    end = n - int(min(rng.uniform(*cfg.lead_s), 0.2 * n / SR) * SR)
    pos = int(min(rng.uniform(*cfg.lead_s), 0.2 * n / SR) * SR) // hop * hop
    while True:
        u = pool.utterances[ids[int(rng.integers(len(ids)))]]
        audio, lab = u.samples(), u.frame_labels()
        if pos + audio.size > end:
            if speakers:  # already have speech: stop rather than crop
                break
            take = min(max((end - pos) // hop * hop, hop), n - pos)  # first one must appear: crop
            audio, lab = audio[:take], lab[: num_frames(take, SR)]
        g = 10 ** (rng.uniform(*cfg.utterance_gain_db) / 20)
        speech[pos : pos + audio.size] += g * audio
        f0 = pos // hop
        labels[f0 : f0 + lab.size] |= lab[: labels.size - f0]
        speakers.append(u.speaker_id)
        pos = (pos + audio.size + int(rng.uniform(*cfg.pause_s) * SR) + hop - 1) // hop * hop
        if pos >= end:
            break
    return speech, labels, speakers


def make_clip(
    rng: np.random.Generator,
    speech_pool: SpeechPool | Sequence[Utterance],
    noise_pool: NoisePool,
    duration_s: float,
    cfg: MixConfig = MixConfig(),
    *,
    keep_parts: bool = False,
) -> Clip:
    """One clip of ``round(duration_s * 16000)`` samples; labels ``(ceil(N/160),)``.

    About ``cfg.p_nonspeech`` of clips are background only (labels all zero); speech clips are
    clean (``p_clean``) or mixed at an SNR drawn uniformly from ``cfg.snr_db``.
    """
    if duration_s <= 0:
        raise ValueError(f"duration_s must be > 0 seconds, got {duration_s}")
    _check_parts(cfg, keep_parts)
    pool = speech_pool if isinstance(speech_pool, SpeechPool) else SpeechPool(speech_pool)
    n = int(round(duration_s * SR))
    weights = {k: w for k, w in cfg.source_weights.items() if pool.by_source.get(k)}
    has_speech = bool(weights) and rng.random() >= cfg.p_nonspeech
    meta: dict[str, Any] = {"speech_source": "none", "speakers": []}
    if has_speech:
        source = _choice(rng, weights)
        speech, labels, speakers = _place_speech(rng, pool, source, n, cfg)
        origin = speakers[0].split(":")[0] if source == "recorded" else source
        meta.update(speech_source=origin, speakers=sorted(set(speakers)))
    else:
        source, speech, labels = "none", np.zeros(n, dtype=np.float32), np.zeros(num_frames(n, SR), np.uint8)
    return mix_speech(rng, speech, labels, noise_pool, cfg, source=source, meta=meta, keep_parts=keep_parts)


def _check_parts(cfg: MixConfig, keep_parts: bool) -> None:
    if keep_parts and cfg.augment:
        raise ValueError("keep_parts needs MixConfig(augment=False): the channel effects act on the mix, "
                         "so it no longer splits into speech + noise")


def mix_speech(
    rng: np.random.Generator,
    speech: np.ndarray,
    labels: np.ndarray,
    noise_pool: NoisePool,
    cfg: MixConfig = MixConfig(),
    *,
    source: str,
    meta: dict[str, Any] | None = None,
    keep_parts: bool = False,
) -> Clip:
    """The channel half of :func:`make_clip`: dry ``speech`` (N,) already placed, with its ``labels``
    ``(ceil(N/160),)``, over a background at an SNR, with reverb, telephone band and augmentation.

    ``source`` names where the speech came from (``"asterisk"`` raises the telephone share,
    ``"none"`` makes a background-only clip: no SNR, no reverb); ``meta`` (copied) starts the
    clip's meta. Tasks that place their own speech (e.g. digit strings with known word times)
    mix it here, exactly as the VAD corpus mixes its clips.
    """
    _check_parts(cfg, keep_parts)
    n = speech.shape[0]
    if labels.shape != (num_frames(n, SR),):
        raise ValueError(f"expected labels of shape ({num_frames(n, SR)},) for {n} samples; received {labels.shape}")
    has_speech = source != "none"
    meta = {**(meta or {}), "snr_db": None, "snr_band": "none"}
    if has_speech:
        clean = rng.random() < cfg.p_clean
        background = "silence" if clean else _choice(rng, cfg.background_weights)
        snr = None if clean else float(rng.choice(cfg.snr_choices) if cfg.snr_choices else rng.uniform(*cfg.snr_db))
        band = f"{snr:g}" if cfg.snr_choices and snr is not None else snr_band(snr)  # fixed SNRs name themselves
        meta.update(snr_db=snr, snr_band=band)
    else:
        background, snr = _choice(rng, cfg.background_weights), None
    noise, names = _background(rng, background, noise_pool, n, cfg)
    if cfg.augment and background != "silence" and rng.random() < cfg.p_second_background:
        second = _choice(rng, {k: w for k, w in cfg.background_weights.items() if k != background})
        extra, extra_names = _background(rng, second, noise_pool, n, cfg)
        rel = 10 ** (rng.uniform(-10, 0) / 20) * np.sqrt((np.mean(np.square(noise, dtype=np.float64)) + 1e-20)
                                                         / (np.mean(np.square(extra, dtype=np.float64)) + 1e-20))
        noise = noise + np.float32(rel) * extra
        names = sorted(set(names) | set(extra_names))
        meta["second_background"] = second
    reverb = has_speech and rng.random() < cfg.p_reverb
    if reverb:
        rt60 = float(rng.uniform(*cfg.rt60_s))
        speech = reverberate(speech, rng, rt60)
        meta["rt60_s"] = round(rt60, 3)
    tel = rng.random() < (max(cfg.p_telephone, 0.5) if source == "asterisk" else cfg.p_telephone)
    if tel:
        speech, noise = (telephone(speech) if has_speech else speech), telephone(noise)
    if has_speech:
        active = frames_to_samples(labels, n)
        p_speech = float(np.mean(np.square(speech[active] if active.any() else speech, dtype=np.float64)))
        p_noise = float(np.mean(np.square(noise, dtype=np.float64))) + 1e-20
        target = p_speech / 10 ** ((snr if snr is not None else 60.0 + rng.uniform(0, 20)) / 10)
        noise = noise * np.float32(np.sqrt(target / p_noise))
    mix = speech + noise
    if cfg.augment:
        for p, effect in ((cfg.p_bandlimit, band_limit), (cfg.p_eq, random_eq), (cfg.p_codec, codec_roundtrip)):
            if rng.random() < p:
                mix, info = effect(mix, rng)
                meta.update(info)
    gain_db = float(rng.uniform(*cfg.gain_dbfs))
    peak = float(np.max(np.abs(mix))) if n else 0.0
    scale = min(10 ** (gain_db / 20), _PEAK_MAX) / peak if peak > 0 else 1.0
    audio = (mix * np.float32(scale)).astype(np.float32)
    if cfg.augment:
        clipping, dc = rng.random() < cfg.p_clipping, rng.random() < cfg.p_dc
        if clipping or dc:
            audio, info = clip_and_offset(audio, rng, clipping, dc)
            audio = np.clip(audio, -_PEAK_MAX, _PEAK_MAX)
            meta.update(info)
    meta.update(background=background, background_names=names, telephone=bool(tel), reverb=bool(reverb),
                gain_dbfs=round(20 * np.log10(max(float(np.max(np.abs(audio))), 1e-12)), 3),
                duration_s=round(n / SR, 3),
                speech_fraction=round(float(labels.mean()) if labels.size else 0.0, 4))
    if meta["snr_db"] is not None:
        meta["snr_db"] = round(meta["snr_db"], 3)
    parts = dict(speech=speech * np.float32(scale), noise=noise * np.float32(scale)) if keep_parts else {}
    return Clip(audio=audio, labels=labels, meta=meta, **parts)
