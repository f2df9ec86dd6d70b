"""Feature datasets over a corpus split: log-mel frames (computed once, cached) + the task's targets.

A split directory holds ``manifest.jsonl`` (one clip per line: ``file``, ``duration``, ``meta`` and
whatever the task reads its targets from, e.g. VAD's ``labels``, a ``.npy`` of per-frame labels)
next to the audio. Features come from the same frontend that serves streaming
(:func:`streamseq.features.compute_features`). Targets are the task's business
(:meth:`~streamseq.tasks.Task.load_targets`): one value per frame or not.
Dimension legend: B batch, T frames, F features.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import soundfile as sf
import torch
from tqdm import tqdm

from streamseq.data.corpus import load_manifest
from streamseq.features import FeatureConfig, compute_features
from streamseq.tasks.base import Task


class FeatureSet(torch.utils.data.Dataset):
    """Items are ``(frames (T, F), targets, meta)`` for each clip of a split; ``task`` reads the targets.

    The features are cached beside the manifest (``features-<hash of cfg>.pt``: ``frames``, all clips
    concatenated, and ``lengths``); targets are read from the manifest each time. Cache files of
    earlier versions, which also held VAD labels, hold the same features and are read as they are.
    """

    def __init__(self, split_dir: str | os.PathLike, cfg: FeatureConfig = FeatureConfig(), *, task: Task,
                 progress: bool = True):
        self.split_dir = Path(split_dir)
        self.cfg, self.task = cfg, task
        self.manifest = load_manifest(self.split_dir)
        key = hashlib.sha1(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:10]
        cache = self.split_dir / f"features-{key}.pt"
        if cache.is_file():
            blob = torch.load(cache, weights_only=True)
        else:
            blob = self._extract(progress)
            tmp = cache.with_suffix(f".{os.getpid()}.tmp")  # several trainer processes may race here
            torch.save(blob, tmp)
            os.replace(tmp, cache)
        self.frames = torch.split(blob["frames"], blob["lengths"].tolist())
        if len(self.frames) != len(self.manifest):
            raise ValueError(f"{cache} holds features of {len(self.frames)} clips but the manifest lists "
                             f"{len(self.manifest)}; delete the cache file to compute them again")
        self.targets = [task.load_targets(self.split_dir, item, f.shape[0])
                        for item, f in zip(self.manifest, self.frames, strict=True)]

    def _extract(self, progress: bool) -> dict:
        frames = []
        for item in tqdm(self.manifest, desc=f"features {self.split_dir.name}", disable=not progress, leave=False):
            audio, rate = sf.read(self.split_dir / item["file"], dtype="float32", always_2d=False)
            frames.append(compute_features(audio, rate, self.cfg))
        return {"frames": torch.cat(frames), "lengths": torch.tensor([f.shape[0] for f in frames])}

    def __len__(self) -> int:
        return len(self.manifest)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
        return self.frames[i], self.targets[i], self.manifest[i].get("meta", {})

    def feature_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Global mean and std ``(F,)`` over every frame of the split."""
        allf = torch.cat(self.frames)
        return allf.mean(0), allf.std(0)


def collate(batch: list[tuple[torch.Tensor, torch.Tensor, dict]], task: Task, max_frames: int | None = None,
            generator: torch.Generator | None = None) -> dict:
    """Pad a list of items to ``frames (B, T, F)`` and ``lengths (B,)``, plus ``meta`` and the task's
    target entries (:meth:`~streamseq.tasks.Task.collate_targets`: ``targets``, ``target_lengths``, ...).

    With ``max_frames`` (training), every item is cropped at a random offset (drawn from
    ``generator``) to ``min(max_frames, shortest item)`` frames, its targets by the task:
    equal lengths keep the GRU on its fast unpadded path.
    """
    if max_frames is not None:
        max_frames = min(max_frames, min(f.shape[0] for f, _, _ in batch))
    frames, targets = [], []
    for f, t, _ in batch:
        if max_frames is not None and f.shape[0] > max_frames:
            start = int(torch.randint(0, f.shape[0] - max_frames + 1, (1,), generator=generator))
            f, t = f[start : start + max_frames], task.crop_targets(t, start, max_frames)
        frames.append(f)
        targets.append(t)
    return {
        "frames": torch.nn.utils.rnn.pad_sequence(frames, batch_first=True),
        "lengths": torch.tensor([f.shape[0] for f in frames]),
        "meta": [m for _, _, m in batch],
        **task.collate_targets(targets),
    }
