"""Evaluate digit recognisers on a digits split: digit error rate and string accuracy overall, per SNR
band and per speech source, plus each recogniser's real-time factor.

A recogniser maps a mono clip ``(N,)`` float32 and its sample rate (Hz) to a digit string
("4155550123"); a clip's reference is its ``meta["digits"]``. Digit error rate = edit distance
(substitutions + insertions + deletions) / reference digits, summed over the clips of a group;
string accuracy = the share of clips whose string is exactly right.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from streamseq.features import FeatureConfig, compute_features
from streamseq.models import FrameModel
from streamseq.tasks import get_task
from streamseq.tasks.digits.baselines import Recognizer
from streamseq.tasks.digits.task import digit_scores
from streamseq.tasks.formats import band_order

SAMPLE_RATE = FeatureConfig().sample_rate  # of corpus splits: the feature rate, 16 kHz
Clip = tuple[np.ndarray, dict]  # (audio (N,) at SAMPLE_RATE, meta with "digits")


def model_recognizer(model: FrameModel) -> Recognizer:
    """A digits model run offline over the whole clip (identical to its streaming outputs), its outputs
    through the task's streaming decoder: the ``end`` events' transcripts, joined."""
    if model.task != "digits":
        raise ValueError(f"expected a model of task 'digits'; received one of task {model.task!r}")
    task = get_task("digits")

    @torch.inference_mode()
    def recognize(audio: np.ndarray, sample_rate: int) -> str:
        feats = compute_features(audio, sample_rate, model.feature_config)  # (T, n_mels)
        values = model.activate(model(feats[None]))[0].numpy()  # (T, C)
        decoder = task.decoder(model)
        events = decoder.push(values) + decoder.flush()
        return "".join(e.transcript.text for e in events if e.kind == "end" and e.transcript is not None)

    return recognize


def default_split(cache_dir: Path | None = None, progress: bool = True) -> Path:
    """The digits corpus's validation split at the training defaults (``streamseq train --task digits``:
    ``--train-hours 4 --valid-hours 0.3 --data-seed 1234``), built and cached on first use (minutes);
    ``cache_dir`` defaults to ``$STREAMSEQ_CACHE``."""
    from streamseq.data.corpus import DEFAULT_CACHE
    from streamseq.training.config import TrainConfig

    cfg = TrainConfig(task="digits", select_split="valid")
    return get_task("digits").build_data(cfg, cache_dir or DEFAULT_CACHE, jobs=2, progress=progress) / "valid"


def load_split(split_dir: Path) -> list[Clip]:
    """``(audio (N,) at :data:`SAMPLE_RATE`, meta)`` for every clip of a digits split (``manifest.jsonl``)."""
    from streamseq.data.corpus import load_manifest

    clips = []
    for item in load_manifest(split_dir):
        meta = item.get("meta", {})
        if not isinstance(meta.get("digits"), str):
            raise ValueError(f"{split_dir / 'manifest.jsonl'}: {item['file']} has no meta 'digits' (the digit string "
                             "said); expected a split of the digits corpus (streamseq train --task digits builds one)")
        audio, rate = sf.read(split_dir / item["file"], dtype="float32")
        if rate != SAMPLE_RATE or audio.ndim != 1:
            raise ValueError(f"{split_dir / item['file']}: expected mono {SAMPLE_RATE / 1000:g} kHz corpus audio, "
                             f"found {rate} Hz with shape {audio.shape}")
        clips.append((audio, meta))
    return clips


def _scores(refs: list[str], hyps: list[str]) -> dict[str, float]:
    return {**digit_scores(refs, hyps), "clips": len(refs), "digits": sum(len(r) for r in refs)}


def evaluate_recognizers(
    clips: Sequence[Clip],
    recognizers: dict[str, Recognizer],
    group_keys: Sequence[str] = ("snr_band", "speech_source"),
) -> dict[str, dict]:
    """Per recogniser: ``{("overall", "all"): metrics, (key, value): metrics, ...}``; metrics are
    ``digit_error_rate``, ``string_accuracy``, ``clips`` and ``digits``, and overall also ``rtf``
    (seconds of recognition per second of audio)."""
    group_keys = [k for k in group_keys if all(k in meta for _, meta in clips)]  # your own data may lack some
    refs = [meta["digits"] for _, meta in clips]
    seconds = sum(audio.size for audio, _ in clips) / SAMPLE_RATE
    results = {}
    for name, recognize in recognizers.items():
        start = time.perf_counter()
        hyps = [recognize(audio, SAMPLE_RATE) for audio, _ in clips]
        rtf = (time.perf_counter() - start) / max(seconds, 1e-9)
        groups = {("overall", "all"): {**_scores(refs, hyps), "rtf": rtf}}
        for key in group_keys:
            for value in sorted({str(meta[key]) for _, meta in clips}):
                pick = [i for i, (_, meta) in enumerate(clips) if str(meta[key]) == value]
                groups[(key, value)] = _scores([refs[i] for i in pick], [hyps[i] for i in pick])
        results[name] = groups
    return results


def markdown_tables(results: dict[str, dict]) -> str:
    """Digit error rate and string accuracy, overall and per SNR band, as Markdown tables."""
    names = list(results)
    bands = sorted({g[1] for n in names for g in results[n] if g[0] == "snr_band"}, key=band_order)
    lines = []
    for metric, title in (("digit_error_rate", "Digit error rate (edits / reference digits; lower is better)"),
                          ("string_accuracy", "String accuracy (whole string right)")):
        extra = " real-time factor |" if metric == "digit_error_rate" else ""
        lines += [f"**{title}**", "", "| system | overall | " + " | ".join(f"SNR {b}" for b in bands) + f" |{extra}",
                  "|---|---:|" + "---:|" * len(bands) + ("---:|" if extra else "")]
        for n in names:
            overall = results[n][("overall", "all")]
            cells = [overall[metric], *(results[n].get(("snr_band", b), {}).get(metric, np.nan) for b in bands)]
            rtf = f" {overall['rtf']:.3f} |" if extra else ""
            lines.append(f"| {n} | " + " | ".join(f"{c:.2%}" for c in cells) + f" |{rtf}")
        lines.append("")
    return "\n".join(lines)


def group_table(results: dict[str, dict], key: str, metric: str = "digit_error_rate") -> str:
    """One Markdown table of ``metric`` per value of ``key`` (e.g. speech_source)."""
    names = list(results)
    values = sorted({g[1] for n in names for g in results[n] if g[0] == key})
    lines = ["| system | " + " | ".join(f"{key}={v}" for v in values) + " |", "|---|" + "---:|" * len(values)]
    for n in names:
        cells = [results[n].get((key, v), {}).get(metric, np.nan) for v in values]
        lines.append(f"| {n} | " + " | ".join(f"{c:.2%}" for c in cells) + " |")
    return "\n".join(lines) + "\n"
