"""Tasks own their targets, loss, metrics, decoder and writers; the core defers to them.

A toy task defined here (count tone beeps with CTC: two outputs, targets a short token list per clip,
not one value per frame) is registered with one registry line and goes through the unchanged
``streamseq train``, checkpoint and ``streamseq process``. VAD keeps its numbers: its batches and
loss equal a frame-aligned reference, and its checkpoints carry the segmenter settings.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import make_model
from streamseq import load_model
from streamseq.apps import ProcessOptions
from streamseq.apps.latency import load_models
from streamseq.apps.live import LivePipeline
from streamseq.apps.process_files import load_task_model, run_settings
from streamseq.cli.main import main
from streamseq.data.dataset import FeatureSet, collate
from streamseq.models import save_checkpoint
from streamseq.models.checkpoint import pretrained_names
from streamseq.tasks import TASKS, get_task
from streamseq.tasks.vad.postprocess import SegmenterConfig
from streamseq.training.config import TrainConfig
from streamseq.training.trainer import Trainer

RATE, HOP = 16000, 160


# --------------------------------------------------------------------------- a toy third task
def write_beeps(root: Path, n_clips: int, seed: int) -> None:
    """Clips of faint noise with 1-3 beeps of 150 ms; the manifest lists each beep as (token 1, onset frame)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    lines = []
    for i in range(n_clips):
        n_frames = int(rng.integers(200, 260))
        audio = 0.01 * rng.standard_normal(n_frames * HOP)
        onsets = sorted(rng.choice(np.arange(5, n_frames - 20, 40), size=int(rng.integers(1, 4)), replace=False))
        t = np.arange(15 * HOP) / RATE
        for onset in onsets:
            audio[onset * HOP : (onset + 15) * HOP] += 0.3 * np.sin(2 * np.pi * 800 * t)
        sf.write(root / f"{i}.flac", audio.astype(np.float32), RATE)
        lines.append(json.dumps({"file": f"{i}.flac", "duration": n_frames / 100,
                                 "beeps": [[1, int(o)] for o in onsets], "meta": {}}))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")


def greedy(values: np.ndarray) -> list[int]:
    """Frames where a CTC greedy decode of ``(T, 2)`` outputs starts a beep."""
    best = values.argmax(1)
    return [i for i in range(len(best)) if best[i] == 1 and (i == 0 or best[i - 1] != 1)]


class BeepDecoder:
    def __init__(self, settings: dict) -> None:
        self.settings = {"beeps": settings}
        self.frames, self.previous = 0, 0

    def push(self, values: np.ndarray) -> list[Any]:
        events = []
        for row in values:  # greedy CTC, frame by frame
            best = int(row.argmax())
            if best == 1 and self.previous != 1:
                events.append(self.frames)
            self.frames, self.previous = self.frames + 1, best
        return events

    def flush(self) -> list[Any]:
        self.frames, self.previous = 0, 0
        return []


class BeepWriters:
    extensions: Mapping[str, str] = {"json": ".json", "txt": ".txt"}
    multi_file: tuple[str, ...] = ("json", "txt")

    def result(self, events: list[Any]) -> dict:
        return {"beeps": [{"frame": f} for f in events]}

    def render(self, result: dict, fmt: str, *, first: bool = True, many: bool = False) -> str:
        return json.dumps(result) + "\n" if fmt == "json" else f"{result['file']}: {len(result['beeps'])} beep(s)\n"

    def frames(self, values: np.ndarray, labels: list[str]) -> tuple[np.ndarray, list[str]]:
        return values, labels

    def totals(self, events: list[Any]) -> dict[str, float]:
        return {"beeps": len(events)}

    def describe(self, totals: dict[str, float]) -> str:
        return f"{totals.get('beeps', 0):.0f} beep(s)"


class BeepTask:
    """Count beeps with CTC. Outputs ``(blank, beep)``; a clip's targets are rows ``(token, onset frame)``."""

    name = "beeps"
    labels = ["blank", "beep"]
    activation = "log_softmax"
    primary_metric = "count_accuracy"
    report_metrics = ("count_accuracy",)
    writers = BeepWriters()

    def build_data(self, cfg: TrainConfig, cache: Path, jobs: int, progress: bool) -> Path:
        root = cache / f"beeps-{cfg.data_seed}"
        for split, n, seed in (("train", 12, cfg.data_seed), ("valid", 4, cfg.data_seed + 1)):
            if not (root / split).exists():
                write_beeps(root / split, n, seed)
        return root

    def load_targets(self, split_dir: Path, entry: dict, n_frames: int) -> torch.Tensor:
        rows = torch.tensor(entry["beeps"], dtype=torch.long).reshape(-1, 2)
        assert int(rows[:, 1].max()) < n_frames
        return rows

    def crop_targets(self, targets: torch.Tensor, start: int, n: int) -> torch.Tensor:
        inside = (targets[:, 1] >= start) & (targets[:, 1] < start + n)
        return targets[inside] - torch.tensor([0, start])

    def collate_targets(self, targets: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        tokens = [t[:, 0] for t in targets] + [torch.zeros(1, dtype=torch.long)]  # at least one column
        return {"targets": torch.nn.utils.rnn.pad_sequence(tokens, batch_first=True)[:-1],
                "target_lengths": torch.tensor([len(t) for t in targets])}

    def loss(self, logits: torch.Tensor, lengths: torch.Tensor, batch: dict) -> torch.Tensor:
        log_probs = logits.log_softmax(-1).transpose(0, 1)  # (T, B, C)
        return torch.nn.functional.ctc_loss(log_probs, batch["targets"], lengths, batch["target_lengths"],
                                            zero_infinity=True)

    def metrics(self, outputs: list[np.ndarray], targets: list[np.ndarray], metas: list[dict]) -> dict:
        hits = [len(greedy(o)) == len(t) for o, t in zip(outputs, targets, strict=True)]
        return {"count_accuracy": float(np.mean(hits))}

    def default_task_config(self) -> dict:
        return {"min_gap_frames": 1}

    def decoder(self, model, overrides: Mapping[str, Any] | None = None) -> BeepDecoder:
        return BeepDecoder({**self.default_task_config(), **model.task_config, **(overrides or {})})


@pytest.fixture(scope="module")
def beeps():
    """The toy task, registered the one way a task is registered: a line in TASKS (here for this module)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(TASKS, "beeps", f"{__name__}:BeepTask")
        yield get_task("beeps")


@pytest.fixture(scope="module")
def beeps_run(beeps, tmp_path_factory) -> tuple[Path, Path]:
    """``streamseq train --task beeps``, once for the module: (run folder, data folder)."""
    tmp = tmp_path_factory.mktemp("beeps")
    args = ["train", "--task", "beeps", "--select-split", "valid", "--epochs", "2", "--hidden-size", "8",
            "--num-layers", "1", "--batch-size", "4", "--max-frames", "150", "--warmup-steps", "2", "--threads", "1",
            "--data-seed", "3", "--out", str(tmp / "run"), "--cache", str(tmp / "cache"), "--quiet"]
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert main(args) == 0
    report = json.loads(out.getvalue().split("\n", 1)[1])
    assert "count_accuracy" in report["best"] and np.isfinite(report["best"]["loss"])
    return tmp / "run", tmp / "cache" / "beeps-3"


# --------------------------------------------------------------------------- the toy task end to end
def test_a_task_added_by_one_registry_line_trains_with_the_unchanged_cli_and_reloads(beeps_run):
    run, _ = beeps_run
    model = load_model(run / "best.pt")
    assert (model.task, model.labels, model.task_config) == ("beeps", ["blank", "beep"], {"min_gap_frames": 1})
    assert model.config.n_outputs == 2 and model.config.activation == "log_softmax"
    assert model.metadata["train_config"]["task"] == "beeps"


def test_targets_that_are_not_one_per_frame_are_read_cropped_and_batched_by_the_task(beeps, tmp_path):
    write_beeps(tmp_path / "split", 6, seed=0)
    data = FeatureSet(tmp_path / "split", task=beeps, progress=False)
    manifest = [json.loads(line) for line in (tmp_path / "split" / "manifest.jsonl").read_text().splitlines()]
    whole = collate([data[i] for i in range(6)], beeps)
    assert whole["target_lengths"].tolist() == [len(m["beeps"]) for m in manifest]
    cropped = collate([data[i] for i in range(6)], beeps, max_frames=120, generator=torch.Generator().manual_seed(0))
    assert cropped["frames"].shape[1] == 120
    for b, m in enumerate(manifest):
        frames = data[b][0]
        start = next(s for s in range(len(frames) - 119) if torch.equal(frames[s : s + 120], cropped["frames"][b]))
        inside = [o for _, o in m["beeps"] if start <= o < start + 120]
        assert cropped["target_lengths"][b] == len(inside)


def test_process_writes_any_task_through_its_decoder_and_writers(beeps_run, tmp_path, capsys):
    run, data = beeps_run
    wav = data / "valid" / "0.flac"
    assert main(["process", str(wav), "--model", str(run / "best.pt"), "--format", "json", "--quiet"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert result["file"] == str(wav) and isinstance(result["beeps"], list) and "segments" not in result
    assert "beep(s)" in err
    assert main(["process", str(wav), "--model", str(run / "best.pt"), "--out", str(tmp_path / "out"), "--format",
                 "txt", "--frames", "csv", "--quiet"]) == 0
    assert (tmp_path / "out" / "0.frames.csv").read_text().startswith("time,blank,beep\n")
    assert (tmp_path / "out" / "0.txt").read_text().endswith("beep(s)\n")
    assert main(["process", str(wav), "--model", str(run / "best.pt"), "--format", "rttm"]) == 2
    assert "this model's task writes json, txt" in capsys.readouterr().err


def test_apps_about_segments_name_the_task_that_has_none(beeps_run):
    run, _ = beeps_run
    model = load_model(run / "best.pt")
    with pytest.raises(ValueError, match="task 'beeps', whose outputs are not segments; the live pipeline needs"):
        LivePipeline(model)
    with pytest.raises(ValueError, match="task 'beeps', whose outputs are not segments; the latency report needs"):
        load_models([str(run / "best.pt")])


# --------------------------------------------------------------------------- registry errors
def test_an_unknown_task_is_refused_naming_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="unknown task 'keywords'; known tasks: .*vad"):
        get_task("keywords")
    model = make_model()
    model.set_task("keywords", ["blank"])
    save_checkpoint(model, tmp_path / "keywords.pt")
    with pytest.raises(ValueError, match="was trained for task 'keywords', which this streamseq does not know"):
        load_task_model(str(tmp_path / "keywords.pt"))
    with pytest.raises(ValueError, match="config is for task 'vad'; received task 'beeps'"):
        Trainer(TrainConfig(), BeepTask(), tmp_path / "run")


def test_a_model_needs_a_task_and_one_label_per_output_before_it_is_saved(tmp_path):
    model = make_model(outputs=2)
    with pytest.raises(ValueError, match="the model has no task"):
        save_checkpoint(model, tmp_path / "m.pt")
    with pytest.raises(ValueError, match="expected 2 labels, one per model output; received 1"):
        model.set_task("vad", ["speech"])


# --------------------------------------------------------------------------- VAD task config in checkpoints
def test_checkpoint_keeps_the_segmenter_settings_and_older_checkpoints_get_the_defaults(tmp_path):
    vad = get_task("vad")
    model = make_model()
    model.set_task("vad", ["speech"], {**vad.default_task_config(), "onset": 0.7, "min_silence_s": 0.5})
    loaded = load_model(save_checkpoint(model, tmp_path / "m.pt"))
    assert vad.segmenter_config(loaded) == SegmenterConfig(onset=0.7, min_silence_s=0.5)
    assert run_settings(loaded, ProcessOptions())["segmenter"]["onset"] == 0.7  # what `streamseq process` runs
    assert run_settings(loaded, ProcessOptions(decoder={"onset": 0.9}))["segmenter"]["onset"] == 0.9
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    del payload["task_config"]  # as written before checkpoints had one
    torch.save(payload, tmp_path / "old.pt")
    old = load_model(tmp_path / "old.pt")
    assert old.task_config == {} and vad.segmenter_config(old) == SegmenterConfig()
    with pytest.raises(ValueError, match=r"unknown VAD segmenter settings \['threshold'\]"):
        vad.segmenter_config(old, {"threshold": 0.5})


def test_shipped_models_load_with_their_tasks_default_segmenter():
    names = pretrained_names()
    assert {n.split("-")[0] for n in names} == {"vad", "digits"}
    for name in names:
        model = load_model(name)
        task = get_task(name.split("-")[0])
        assert model.task == task.name and model.labels == task.labels, name
        assert task.segmenter_config(model) == task.segmenter_config(model, task.default_task_config()), name


def test_a_new_vad_model_stores_the_default_segmenter_settings(tmp_path):
    vad = get_task("vad")
    trainer = Trainer(TrainConfig(hidden_size=4, num_layers=1), vad, tmp_path)
    assert trainer.model.task_config == vad.default_task_config()
    assert SegmenterConfig(**trainer.model.task_config) == SegmenterConfig()


# --------------------------------------------------------------------------- VAD training stays as it was
def frame_collate(batch, max_frames, generator):
    """The frame-aligned batching VAD was trained with before tasks owned their targets."""
    if max_frames is not None:
        max_frames = min(max_frames, min(f.shape[0] for f, _, _ in batch))
    frames, targets = [], []
    for f, t, _ in batch:
        if max_frames is not None and f.shape[0] > max_frames:
            start = int(torch.randint(0, f.shape[0] - max_frames + 1, (1,), generator=generator))
            f, t = f[start : start + max_frames], t[start : start + max_frames]
        frames.append(f)
        targets.append(t)
    pad = torch.nn.utils.rnn.pad_sequence
    return pad(frames, batch_first=True), pad(targets, batch_first=True), torch.tensor([len(f) for f in frames])


def frame_bce(logits, targets, lengths):
    """Masked binary cross-entropy over the valid frames, as VAD's loss was written before."""
    mask = torch.arange(logits.shape[1])[None, :] < lengths[:, None]
    per_frame = torch.nn.functional.binary_cross_entropy_with_logits(logits[..., 0], targets.float(), reduction="none")
    return (per_frame * mask).sum() / mask.sum().clamp_min(1)


def test_vad_batches_and_loss_equal_the_frame_aligned_reference(tmp_path):
    from test_training import write_split

    vad = get_task("vad")
    data = write_split(tmp_path / "train", 12, seed=4)
    model = make_model()
    ours, theirs = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    for first in range(0, 12, 4):
        items = [data[i] for i in range(first, first + 4)]
        batch = collate(items, vad, max_frames=120, generator=ours)
        frames, targets, lengths = frame_collate(items, 120, theirs)
        assert torch.equal(batch["frames"], frames) and torch.equal(batch["targets"], targets)
        assert torch.equal(batch["lengths"], lengths)
        logits = model(frames, lengths)
        assert torch.equal(vad.loss(logits, lengths, batch), frame_bce(logits, targets, lengths))
    whole = collate(items, vad)  # validation batches: no crop, padded
    assert torch.equal(whole["targets"], frame_collate(items, None, None)[1])
    assert whole["target_lengths"].tolist() == [len(t) for _, t, _ in items]
