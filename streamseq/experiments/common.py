"""What the experiments share: their sizes, the corpus, cached training runs, tables and figures.

A training run is one :class:`~streamseq.training.config.TrainConfig`, trained by the real
:class:`~streamseq.training.trainer.Trainer` into ``<work>/<cell>-h<H>-s<seed>-<hash of the config>``.
A run that is already complete there is reused, so experiments that need the same run (the cells
and gradient-flow experiments share theirs) train it once, and a command run again after an
interruption resumes. Missing runs train in ``jobs`` processes of one thread each.

Equal parameter budget: every cell gets the hidden size whose parameter count is closest to the
reference GRU's (:func:`parameter_count`, :func:`equal_budget`).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from concurrent.futures import as_completed
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from streamseq.data.dataset import FeatureSet  # noqa: E402
from streamseq.data.workers import worker_pool  # noqa: E402
from streamseq.models import FrameModel, load_model  # noqa: E402
from streamseq.models.config import CELLS, Cell  # noqa: E402
from streamseq.tasks import get_task  # noqa: E402
from streamseq.training.config import TrainConfig  # noqa: E402

GATES: dict[str, int] = {"rnn": 1, "gru": 3, "lstm": 4}  # weight blocks per recurrent layer
COLORS: dict[str, str] = {"gru": "tab:blue", "lstm": "tab:green", "rnn": "tab:red"}
_COST = {"gru": 3.0, "lstm": 0.7, "rnn": 0.6}  # CPU seconds per H^2, measured: torch's CPU LSTM is fused, its GRU not


@dataclass(frozen=True)
class Settings:
    """Sizes of the experiments: :data:`FULL` writes ``docs/cells``; :data:`QUICK` is a smoke test."""

    train_hours: float = 0.5  # corpus (synthetic, real_hours=0: runs after `make test`'s setup)
    valid_hours: float = 0.15
    data_seed: int = 1234
    epochs: int = 8
    batch_size: int = 8
    warmup_steps: int = 20
    seeds: tuple[int, ...] = (0, 1, 2)
    reference_hidden: int = 64  # the GRU whose parameter count the other cells match
    num_layers: int = 2
    gradient_frames: int = 600  # frames per clip in the gradient-flow measurement (k < this)
    gradient_clips: int = 64  # at most this many validation clips
    speed_seconds: float = 20.0  # audio per single-stream timing
    max_streams: int = 4096  # where the streams-per-core search stops


FULL = Settings()
QUICK = Settings(train_hours=0.01, valid_hours=0.005, epochs=2, batch_size=2, warmup_steps=1, seeds=(0, 1),
                 reference_hidden=16, num_layers=1, gradient_frames=200, gradient_clips=4, speed_seconds=2.0,
                 max_streams=32)


def parameter_count(cell: str, hidden: int, layers: int, inputs: int = 40, outputs: int = 1) -> int:
    """Trainable parameters of a unidirectional model: per layer ``G * H * (in + H + 2)`` (G weight
    blocks: 1 tanh RNN, 3 GRU, 4 LSTM; two bias vectors), plus the head ``H * C + C``."""
    g = GATES[cell]
    recurrent = sum(g * hidden * ((inputs if layer == 0 else hidden) + hidden + 2) for layer in range(layers))
    return recurrent + hidden * outputs + outputs


def equal_budget(reference_hidden: int, layers: int, inputs: int = 40, reference: str = "gru") -> dict[str, int]:
    """Hidden size per cell whose parameter count is closest to ``reference`` at ``reference_hidden``."""
    budget = parameter_count(reference, reference_hidden, layers, inputs)

    def closest(cell: str) -> int:
        return min(range(1, 8 * reference_hidden), key=lambda h: abs(parameter_count(cell, h, layers, inputs) - budget))

    return {cell: closest(cell) for cell in CELLS}


@dataclass
class Run:
    """A finished training run: its config, folder and the Trainer's history (one dict per epoch)."""

    config: TrainConfig
    path: Path
    history: list[dict]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def step_loss(self) -> np.ndarray:
        """Training loss of every optimiser step, ``(steps,)``."""
        return np.array([x for h in self.history for x in h["step_loss"]], dtype=np.float64)

    @property
    def step_grad_norm(self) -> np.ndarray:
        """Global gradient norm of every step before clipping, ``(steps,)``."""
        return np.array([x for h in self.history for x in h["step_grad_norm"]], dtype=np.float64)

    @property
    def final(self) -> dict:
        """Validation metrics of the last epoch (no epoch selection)."""
        return self.history[-1]

    @property
    def train_seconds(self) -> float:
        return float(sum(h["seconds"] for h in self.history))

    def model(self) -> FrameModel:
        """The model after the last epoch."""
        return load_model(self.path / "last.pt")


def _train(job: tuple[dict, str, str]) -> float:
    """Worker: train one run (resuming if its folder holds part of it); returns the wall seconds."""
    from streamseq.training.trainer import Trainer

    cfg_dict, corpus, out = job
    cfg, task = TrainConfig(**cfg_dict), get_task("vad")
    started = time.perf_counter()
    train = FeatureSet(Path(corpus) / "train", task=task, progress=False)
    valid = FeatureSet(Path(corpus) / cfg.select_split, task=task, progress=False)
    Trainer(cfg, task, out, progress=False).fit(train, valid)
    return time.perf_counter() - started


class Workspace:
    """The corpus, the runs folder and the sizes one command works with."""

    def __init__(self, settings: Settings, work: Path, cache: Path, jobs: int = 2, progress: bool = True) -> None:
        self.settings, self.work, self.cache = settings, Path(work), Path(cache)
        self.jobs, self.progress = max(1, jobs), progress
        self.task = get_task("vad")
        self.hidden = equal_budget(settings.reference_hidden, settings.num_layers)
        self.memo: dict[str, Any] = {}  # measurements that several experiments use

    def log(self, message: str) -> None:
        if self.progress:
            print(message, flush=True)

    @cached_property
    def corpus(self) -> Path:
        from streamseq.data.corpus import build_corpus

        s = self.settings
        self.log(f"corpus: {s.train_hours} h train, {s.valid_hours} h valid (seed {s.data_seed}; cached)")
        return build_corpus(self.cache, train_hours=s.train_hours, valid_hours=s.valid_hours, real_hours=0.0,
                            seed=s.data_seed, jobs=self.jobs, progress=self.progress)

    @cached_property
    def train_set(self) -> FeatureSet:
        return FeatureSet(self.corpus / "train", task=self.task, progress=self.progress)

    @cached_property
    def valid_set(self) -> FeatureSet:
        return FeatureSet(self.corpus / "valid", task=self.task, progress=self.progress)

    def config(self, cell: Cell, seed: int, **overrides: Any) -> TrainConfig:
        """The experiments' training settings for ``cell`` at its equal-budget hidden size."""
        s = self.settings
        cfg = TrainConfig(cell=cell, hidden_size=self.hidden[cell], num_layers=s.num_layers, epochs=s.epochs,
                          batch_size=s.batch_size, warmup_steps=s.warmup_steps, seed=seed, threads=1,
                          train_hours=s.train_hours, valid_hours=s.valid_hours, real_hours=0.0,
                          select_split="valid", data_seed=s.data_seed)
        return replace(cfg, **overrides)

    def run_dir(self, cfg: TrainConfig) -> Path:
        key = hashlib.sha1(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
        return self.work / f"{cfg.cell}-h{cfg.hidden_size}-s{cfg.seed}-{key}"

    def _history(self, cfg: TrainConfig) -> list[dict] | None:
        path = self.run_dir(cfg) / "last.train-state.pt"
        if not path.is_file():
            return None
        state = torch.load(path, weights_only=False)
        return state["history"] if state["epoch"] >= cfg.epochs else None

    def runs(self, configs: Sequence[TrainConfig]) -> list[Run]:
        """The finished runs of ``configs`` (in order), training the missing ones first."""
        unique = list(dict.fromkeys(configs))
        todo = [c for c in unique if self._history(c) is None]
        if todo:
            self.train_set, self.valid_set  # noqa: B018 (features computed once, before the workers read them)
            todo.sort(key=lambda c: -_COST[c.cell] * c.hidden_size ** 2)  # slowest first: better packing
            self.log(f"training {len(todo)} runs ({len(unique) - len(todo)} reused) in {self.jobs} processes, "
                     f"under {self.work}")
            jobs = [(c.to_dict(), str(self.corpus), str(self.run_dir(c))) for c in todo]
            with worker_pool(min(self.jobs, len(jobs))) as ex:
                if ex is None:
                    for i, job in enumerate(jobs):
                        self.log(f"  [{i + 1}/{len(jobs)}] {Path(job[2]).name}: {_train(job):.0f} s")
                else:
                    futures = {ex.submit(_train, job): job for job in jobs}
                    for i, fut in enumerate(as_completed(futures)):
                        self.log(f"  [{i + 1}/{len(jobs)}] {Path(futures[fut][2]).name}: {fut.result():.0f} s")
        out = []
        for cfg in configs:
            history = self._history(cfg)
            if history is None:
                raise RuntimeError(f"run {self.run_dir(cfg)} did not finish its {cfg.epochs} epochs")
            out.append(Run(cfg, self.run_dir(cfg), history))
        return out


# ----------------------------------------------------------------------------- outputs


def fmt(x: float, digits: int = 4) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def mean_sd(values: Sequence[float], digits: int = 4) -> str:
    """``mean ± sd`` over seeds (sd with n - 1; just the value for one seed)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 1 or not np.all(np.isfinite(v)):
        return " / ".join(fmt(x, digits) for x in v)
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> str:
    """A Markdown table; ``align`` holds one ``l`` or ``r`` per column (default: first left, rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, name: str, data: dict, markdown: str) -> None:
    """``<out>/<name>.json`` (the numbers) and ``<out>/<name>.md`` (the tables)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(_jsonable(data), indent=1, allow_nan=False) + "\n")
    (out / f"{name}.md").write_text(markdown)


def _jsonable(x: Any) -> Any:
    """Plain JSON values: arrays as lists, floats to 5 significant digits, NaN and infinities as null."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple | np.ndarray):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float):
        return float(f"{x:.5g}") if math.isfinite(x) else None
    if isinstance(x, Path):
        return str(x)
    return x


def save_figure(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
