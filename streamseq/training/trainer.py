"""The shared training core: padded batches, optional SpecAugment, masked task loss, AdamW, clipping, checkpoints.

Task-agnostic: the :class:`~streamseq.tasks.base.Task` supplies the model's outputs (labels,
activation), batches of its targets, loss and metrics, and the task config the checkpoint keeps. Writes
``best.pt`` and ``last.pt`` (loadable with :func:`streamseq.load_model`) and
``last.train-state.pt`` (optimiser, schedule, RNG) so an interrupted run resumes where it was; its
``history`` holds one entry per epoch: validation metrics, mean training loss, and each step's
training loss and global gradient norm before clipping (``step_loss``, ``step_grad_norm``).
With ``ema_decay`` an exponential moving average of the weights, updated after every step
(``torch.optim.swa_utils``), is what is validated and saved; the raw weights go on training.
Runs under ``torchrun`` with DistributedDataParallel (gloo) when a process group is set up.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from streamseq.data.dataset import FeatureSet, collate
from streamseq.features import FeatureConfig
from streamseq.models import FrameModel, ModelConfig, build_model, save_checkpoint
from streamseq.tasks import Task
from streamseq.training.augment import spec_augment
from streamseq.training.config import TrainConfig


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class Trainer:
    """Train one model for one task; ``fit`` returns the best validation metrics."""

    def __init__(self, cfg: TrainConfig, task: Task, out_dir: str | Path, progress: bool = True) -> None:
        if cfg.task != task.name:
            raise ValueError(f"the training config is for task {cfg.task!r}; received task {task.name!r}")
        self.cfg, self.task, self.out_dir = cfg, task, Path(out_dir)
        self.progress = progress and _rank() == 0
        torch.manual_seed(cfg.seed)
        torch.set_num_threads(cfg.threads)
        model_cfg = ModelConfig(
            kind=cfg.kind, cell=cfg.cell, n_inputs=cfg.n_mels, hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers, n_outputs=len(task.labels), output_delay=cfg.output_delay,
            activation=task.activation, normalization=cfg.normalization, norm_time_s=cfg.norm_time_s,
        )
        self.model: FrameModel = build_model(model_cfg, FeatureConfig(n_mels=cfg.n_mels))
        self.model.set_task(task.name, task.labels, task.default_task_config())
        self.ddp = torch.nn.parallel.DistributedDataParallel(self.model) if _world() > 1 else None
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay),
                                 use_buffers=True) if cfg.ema_decay else None
        self.step = 0
        self.epoch = 0
        self.best: dict | None = None
        self.history: list[dict] = []

    # -- schedule -------------------------------------------------------------------------
    def _lr_factor(self, step: int, total: int) -> float:
        """Linear warm-up, then cosine decay to 5% of the peak."""
        if step < self.cfg.warmup_steps:
            return (step + 1) / self.cfg.warmup_steps
        progress = min(1.0, (step - self.cfg.warmup_steps) / max(1, total - self.cfg.warmup_steps))
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

    # -- one step -------------------------------------------------------------------------
    def train_step(self, batch: dict, lr: float) -> dict:
        """Forward, the task's loss, backward, clip by global norm, AdamW step."""
        self.model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        net = self.ddp or self.model
        logits = net(batch["frames"], batch["lengths"])
        loss = self.task.loss(logits, batch["lengths"], batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        limit = self.cfg.clip_norm if self.cfg.clip_norm > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), limit)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)  # the first call copies the weights (and buffers) as they are
        self.step += 1
        return {"loss": float(loss.detach()), "grad_norm": float(grad_norm)}

    # -- validation -----------------------------------------------------------------------
    def served(self) -> FrameModel:
        """The weights that are validated and saved: the moving average once it has seen a step, else the model."""
        if self.ema is not None and int(self.ema.n_averaged) > 0:
            return self.ema.module  # type: ignore[return-value]
        return self.model

    @torch.inference_mode()
    def evaluate(self, data: FeatureSet, batch_size: int = 32) -> dict:
        """Task metrics over a whole split (no cropping), plus the mean loss, of the :meth:`served` weights."""
        model = self.served()
        model.eval()
        outputs: list[np.ndarray] = []
        targets: list[np.ndarray] = []
        metas: list[dict] = []
        losses: list[float] = []
        for i in range(0, len(data), batch_size):
            items = [data[j] for j in range(i, min(len(data), i + batch_size))]
            batch = collate(items, self.task)
            logits = model(batch["frames"], batch["lengths"])
            losses.append(float(self.task.loss(logits, batch["lengths"], batch)))
            values = model.activate(logits)
            for b, n in enumerate(batch["lengths"].tolist()):
                outputs.append(values[b, :n].numpy())
            targets.extend(t.numpy() for _, t, _ in items)
            metas.extend(batch["meta"])
        return {"loss": float(np.mean(losses)), **self.task.metrics(outputs, targets, metas)}

    # -- checkpoints ----------------------------------------------------------------------
    def _state_path(self) -> Path:
        return self.out_dir / "last.train-state.pt"

    def _save(self, metrics: dict, is_best: bool) -> None:
        if _rank() != 0:
            return
        meta = {"train_config": self.cfg.to_dict(), "epoch": self.epoch, "step": self.step, "valid": metrics}
        save_checkpoint(self.served(), self.out_dir / "last.pt", meta)
        if is_best:
            save_checkpoint(self.served(), self.out_dir / "best.pt", meta)
        torch.save({"optimizer": self.optimizer.state_dict(), "model": self.model.state_dict(),
                    "ema": None if self.ema is None else self.ema.state_dict(),
                    "epoch": self.epoch, "step": self.step, "best": self.best, "history": self.history,
                    "rng": torch.get_rng_state(), "train_config": self.cfg.to_dict()}, self._state_path())

    def _resume(self) -> bool:
        path = self._state_path()
        if not path.is_file():
            return False
        state = torch.load(path, weights_only=False)
        saved = {**TrainConfig().to_dict(), **state["train_config"]}  # settings added since: their defaults
        if saved != self.cfg.to_dict():
            raise ValueError(f"{path} was written with different settings; use a new --out or --no-resume")
        self.model.load_state_dict(state["model"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.step, self.best, self.history = state["epoch"], state["step"], state["best"], state["history"]
        torch.set_rng_state(state["rng"])
        return True

    # -- the loop -------------------------------------------------------------------------
    def fit(self, train: FeatureSet, valid: FeatureSet, resume: bool = True) -> dict:
        """Train for ``cfg.epochs`` (or ``cfg.max_steps``), validating and checkpointing each epoch."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if not (resume and self._resume()):
            self.model.set_normalization(*train.feature_stats())
        per_epoch = math.ceil((len(train) // _world()) / self.cfg.batch_size)
        total = self.cfg.epochs * per_epoch
        if self.cfg.max_steps:
            total = min(total, self.cfg.max_steps)
        while self.epoch < self.cfg.epochs and self.step < total:
            gen = torch.Generator().manual_seed(self.cfg.seed * 1000 + self.epoch)
            order = torch.randperm(len(train), generator=gen).tolist()
            order = order[: len(order) - len(order) % _world()][_rank() :: _world()]  # equal shards
            bar = tqdm(range(0, len(order), self.cfg.batch_size), desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}",
                       disable=not self.progress, leave=False)
            started, losses, norms = time.perf_counter(), [], []
            for i in bar:
                if self.step >= total:
                    break
                batch = collate([train[j] for j in order[i : i + self.cfg.batch_size]], self.task, self.cfg.max_frames,
                                gen)
                if self.cfg.freq_masks or self.cfg.time_masks:
                    batch["frames"] = spec_augment(
                        batch["frames"], self.model.feat_mean, freq_masks=self.cfg.freq_masks,
                        freq_mask_bins=self.cfg.freq_mask_bins, time_masks=self.cfg.time_masks,
                        time_mask_frames=self.cfg.time_mask_frames)
                stats = self.train_step(batch, self.cfg.lr * self._lr_factor(self.step, total))
                losses.append(stats["loss"])
                norms.append(stats["grad_norm"])
                bar.set_postfix(loss=f"{stats['loss']:.4f}", gnorm=f"{stats['grad_norm']:.2f}")
            self.epoch += 1
            metrics = self.evaluate(valid)
            key = self.task.primary_metric
            is_best = self.best is None or metrics[key] > self.best[key]
            if is_best:
                self.best = {**metrics, "epoch": self.epoch}
            self.history.append({"epoch": self.epoch, "train_loss": float(np.mean(losses)) if losses else None,
                                 "seconds": time.perf_counter() - started, **metrics,
                                 "step_loss": losses, "step_grad_norm": norms})  # per step; norms before clipping
            self._save(metrics, is_best)
            if self.progress:
                shown = "".join(f"  {name} {metrics.get(name, float('nan')):.4f}" for name in self.task.report_metrics)
                tqdm.write(f"epoch {self.epoch}: train loss {self.history[-1]['train_loss']:.4f}  "
                           f"valid loss {metrics['loss']:.4f}{shown}"
                           f"  ({self.history[-1]['seconds']:.0f} s){'  *best' if is_best else ''}")
        return self.best or {}
