"""Evaluate VAD scorers on a labelled split: ROC-AUC and F1 per SNR band, source and background.

Dimension legend: T frames (10 ms). A record is ``(scores (T,), labels (T,), meta)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from streamseq.features import FeatureConfig, compute_features
from streamseq.models import FrameModel
from streamseq.tasks.formats import band_order
from streamseq.tasks.vad.metrics import grouped_metrics
from streamseq.tasks.vad.postprocess import segments_from_probs
from streamseq.tasks.vad.writers import speech_column

SAMPLE_RATE = FeatureConfig().sample_rate  # of corpus splits: the feature rate, 16 kHz


def model_scorer(model: FrameModel) -> Callable[[np.ndarray], np.ndarray]:
    """Offline scores of a streamseq model (identical to its streaming outputs)."""

    @torch.inference_mode()
    def score(audio: np.ndarray) -> np.ndarray:
        feats = compute_features(audio, SAMPLE_RATE, model.feature_config)
        return model.activate(model(feats[None]))[0, :, column].numpy()

    column = speech_column(model.labels)  # ValueError for a model of another task

    return score


def load_split(split_dir: Path) -> list[tuple[np.ndarray, np.ndarray, dict]]:
    """``(audio (N,) at :data:`SAMPLE_RATE`, labels (T,), meta)`` for every clip of a corpus split."""
    from streamseq.data.corpus import load_manifest

    items = []
    for item in load_manifest(split_dir):
        audio, rate = sf.read(split_dir / item["file"], dtype="float32")
        if rate != SAMPLE_RATE:
            raise ValueError(
                f"{split_dir / item['file']}: expected {SAMPLE_RATE / 1000:g} kHz corpus audio, found {rate} Hz"
            )
        items.append((audio, np.load(split_dir / item["labels"]), item.get("meta", {})))
    return items


def evaluate_scorers(
    clips: Sequence[tuple[np.ndarray, np.ndarray, dict]],
    scorers: dict[str, Callable[[np.ndarray], np.ndarray]],
    group_keys: Sequence[str] = ("snr_band", "speech_source", "background"),
    threshold: float = 0.5,
) -> dict[str, dict]:
    """Per scorer: grouped metrics plus ``("nonspeech", "fa")``: on speech-free clips, the share of
    frames called speech (``rate``) and the share inside segments after the default
    :class:`Segmenter` (``segment_rate``: what a user of the segments sees)."""
    group_keys = [k for k in group_keys if all(k in meta for _, _, meta in clips)]  # your own data may lack some
    results = {}
    for name, scorer in scorers.items():
        records = [(scorer(audio), labels, meta) for audio, labels, meta in clips]
        groups = grouped_metrics(records, group_keys, threshold)
        quiet = [s for s, y, m in records if not np.any(y)]
        frames = sum(s.size for s in quiet)
        in_segments = sum(seg.end_frame - seg.start_frame
                          for s in quiet for seg in segments_from_probs(np.clip(s, 0, 1)))
        groups[("nonspeech", "fa")] = {
            "rate": float(np.mean(np.concatenate(quiet) >= threshold)) if quiet else float("nan"),
            "segment_rate": in_segments / frames if frames else float("nan")}
        results[name] = groups
    return results


def markdown_tables(results: dict[str, dict]) -> str:
    """ROC-AUC and F1 per SNR band, then miss / false-alarm rates, as Markdown tables."""
    names = list(results)
    bands = sorted({g[1] for n in names for g in results[n] if g[0] == "snr_band" and g[1] != "none"}, key=band_order)
    lines = []
    for metric, title in (("roc_auc", "ROC-AUC"), ("f1", "F1 (threshold 0.5)")):
        lines += [f"**{title}**", "", "| model | overall | " + " | ".join(f"SNR {b}" for b in bands) + " |",
                  "|---|---:|" + "---:|" * len(bands)]
        for n in names:
            by_band = [results[n].get(("snr_band", b), {}).get(metric, np.nan) for b in bands]
            cells = [results[n][("overall", "all")][metric], *by_band]
            lines.append(f"| {n} | " + " | ".join(f"{c:.4f}" for c in cells) + " |")
        lines.append("")
    lines += ["**Error rates** (music/noise-only clips: share of frames called speech, raw and inside segments)", "",
              "| model | miss | false alarm | music/noise-only: frames | music/noise-only: segments |",
              "|---|---:|---:|---:|---:|"]
    for n in names:
        o, fa = results[n][("overall", "all")], results[n][("nonspeech", "fa")]
        lines.append(f"| {n} | {o['miss_rate']:.2%} | {o['false_alarm_rate']:.2%} | {fa['rate']:.2%} | "
                     f"{fa['segment_rate']:.2%} |")
    return "\n".join(lines) + "\n"


def group_table(results: dict[str, dict], key: str, metric: str = "f1") -> str:
    """One Markdown table of ``metric`` per value of ``key`` (e.g. speech_source)."""
    names = list(results)
    values = sorted({g[1] for n in names for g, m in results[n].items()  # speech-free groups: see nonspeech
                     if g[0] == key and m.get("speech_fraction", 0) > 0}, key=str)
    lines = ["| model | " + " | ".join(f"{key}={v}" for v in values) + " |", "|---|" + "---:|" * len(values)]
    for n in names:
        cells = [results[n].get((key, v), {}).get(metric, np.nan) for v in values]
        lines.append(f"| {n} | " + " | ".join(f"{c:.4f}" for c in cells) + " |")
    return "\n".join(lines) + "\n"
