"""The shared training core: it learns, clips, checkpoints, resumes and is reproducible."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from streamseq import load_model
from streamseq.cli.main import build_parser
from streamseq.data.dataset import FeatureSet, collate
from streamseq.models import build_model
from streamseq.tasks import get_task
from streamseq.training.augment import spec_augment
from streamseq.training.config import TrainConfig
from streamseq.training.trainer import Trainer


def write_split(root, n_clips: int, seed: int):
    """Clips of noise with loud harmonic bursts; the bursts are the 'speech' frames."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    lines = []
    for i in range(n_clips):
        n_frames = int(rng.integers(150, 300))
        labels = np.zeros(n_frames, np.uint8)
        start = int(rng.integers(10, n_frames // 2))
        labels[start : start + int(rng.integers(30, 80))] = 1
        t = np.arange(n_frames * 160) / 16000
        audio = 0.02 * rng.standard_normal(t.size)
        voiced = np.repeat(labels, 160).astype(bool)
        f0 = rng.uniform(100, 250)
        audio[voiced] += sum(0.1 / h * np.sin(2 * np.pi * h * f0 * t[voiced]) for h in range(1, 8))
        sf.write(root / f"{i}.flac", audio.astype(np.float32), 16000)
        np.save(root / f"{i}.labels.npy", labels)
        record = {"file": f"{i}.flac", "labels": f"{i}.labels.npy", "duration": t[-1], "meta": {"snr_band": "x"}}
        lines.append(json.dumps(record))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return FeatureSet(root, task=get_task("vad"), progress=False)


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    return write_split(root / "train", 24, 0), write_split(root / "valid", 8, 1)


def tiny(**kw) -> TrainConfig:
    base = dict(hidden_size=16, num_layers=1, epochs=3, batch_size=8, warmup_steps=2, lr=1e-2, threads=1)
    return TrainConfig(**{**base, **kw})


def interrupt_in_epoch_two(cfg: TrainConfig, out, train, valid) -> None:
    """A run killed half-way through its second epoch (a KeyboardInterrupt in a training step)."""
    cut = Trainer(cfg, get_task("vad"), out, progress=False)
    real_step = cut.train_step

    def step(batch, lr):
        if cut.epoch == 1 and cut.step > 4:
            raise KeyboardInterrupt
        return real_step(batch, lr)

    cut.train_step = step  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        cut.fit(train, valid)


def test_tiny_training_run_lowers_the_loss_and_writes_a_loadable_checkpoint(splits, tmp_path):
    train, valid = splits
    trainer = Trainer(tiny(epochs=6), get_task("vad"), tmp_path, progress=False)
    before = trainer.evaluate(valid)["loss"]
    best = trainer.fit(train, valid)
    assert best["loss"] < before * 0.8
    model = load_model(tmp_path / "best.pt")
    assert model.metadata["train_config"]["hidden_size"] == 16 and model.task == "vad"
    assert (tmp_path / "last.pt").is_file()


def test_gradient_clipping_bounds_the_global_norm_seen_by_the_optimizer(splits, tmp_path):
    train, _ = splits
    trainer = Trainer(tiny(clip_norm=0.01), get_task("vad"), tmp_path, progress=False)
    trainer.model.set_normalization(*train.feature_stats())
    seen = []

    def measure(optimizer, args, kwargs):
        grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
        seen.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))

    trainer.optimizer.register_step_pre_hook(measure)
    stats = trainer.train_step(collate([train[i] for i in range(8)], trainer.task), lr=1e-3)
    assert stats["grad_norm"] > 0.01  # the raw gradient was larger than the bound ...
    assert seen[0] <= 0.01 * 1.0001  # ... and the optimiser only saw the clipped one


def test_same_seed_gives_the_same_model(splits, tmp_path):
    train, valid = splits
    for run in ("a", "b"):
        Trainer(tiny(epochs=1), get_task("vad"), tmp_path / run, progress=False).fit(train, valid)
    a, b = load_model(tmp_path / "a" / "last.pt"), load_model(tmp_path / "b" / "last.pt")
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name


def test_interrupted_run_resumes_from_the_last_epoch_to_the_same_model(splits, tmp_path):
    train, valid = splits
    Trainer(tiny(epochs=3), get_task("vad"), tmp_path / "full", progress=False).fit(train, valid)
    interrupt_in_epoch_two(tiny(epochs=3), tmp_path / "cut", train, valid)
    assert load_model(tmp_path / "cut" / "last.pt").metadata["epoch"] == 1
    resumed = Trainer(tiny(epochs=3), get_task("vad"), tmp_path / "cut", progress=False)
    resumed.fit(train, valid)
    assert resumed.epoch == 3 and [h["epoch"] for h in resumed.history] == [1, 2, 3]
    full, again = load_model(tmp_path / "full" / "last.pt"), load_model(tmp_path / "cut" / "last.pt")
    for (name, a), b in zip(full.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name  # epoch 2 redone from the epoch-1 state: same weights
    with pytest.raises(ValueError, match="different settings"):
        Trainer(tiny(epochs=4), get_task("vad"), tmp_path / "cut", progress=False).fit(train, valid)


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_a_run_with_another_cell_writes_a_checkpoint_of_that_cell(splits, tmp_path, cell):
    train, valid = splits
    Trainer(tiny(epochs=1, cell=cell), get_task("vad"), tmp_path, progress=False).fit(train, valid)
    model = load_model(tmp_path / "best.pt")
    assert model.config.cell == cell and model.metadata["train_config"]["cell"] == cell


def test_train_cli_takes_a_cell_and_refuses_an_unknown_one(capsys):
    assert build_parser().parse_args(["train", "--out", "run"]).cell is None  # TrainConfig's default: gru
    assert build_parser().parse_args(["train", "--cell", "lstm", "--out", "run"]).cell == "lstm"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--cell", "transformer", "--out", "run"])
    err = capsys.readouterr().err
    assert "--cell: invalid choice: 'transformer'" in err and all(cell in err for cell in ("gru", "lstm", "rnn"))


def test_a_run_interrupted_before_cells_existed_resumes(splits, tmp_path):
    train, valid = splits
    Trainer(tiny(epochs=1), get_task("vad"), tmp_path, progress=False).fit(train, valid)
    state = torch.load(tmp_path / "last.train-state.pt", weights_only=False)
    del state["train_config"]["cell"]  # a train state written before TrainConfig.cell
    state["model"] = {k.replace("rnn.", "gru.", 1): v for k, v in state["model"].items()}
    torch.save(state, tmp_path / "last.train-state.pt")
    resumed = Trainer(tiny(epochs=1), get_task("vad"), tmp_path, progress=False)
    resumed.fit(train, valid)
    assert resumed.epoch == 1
    for (name, a), b in zip(load_model(tmp_path / "last.pt").state_dict().items(),
                            resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_a_run_with_the_running_normalisation_writes_a_checkpoint_that_keeps_it(splits, tmp_path):
    train, valid = splits
    Trainer(tiny(epochs=1, normalization="running", norm_time_s=0.5), get_task("vad"), tmp_path,
            progress=False).fit(train, valid)
    model = load_model(tmp_path / "best.pt")
    assert model.config.normalization == "running" and model.config.norm_time_s == 0.5
    fresh = build_model(model.config, model.feature_config).running_mean
    assert model.running_mean is not None and fresh is not None
    trained = model.running_mean.state_dict()
    for name, built in fresh.state_dict().items():
        assert torch.equal(trained[name], built), name  # frozen: the optimiser (weight decay too) never touched it


def test_training_settings_refuse_an_unknown_normalisation_and_a_time_constant_that_is_not_positive(capsys):
    with pytest.raises(ValueError, match="normalization must be one of global, running; received 'pcen'"):
        TrainConfig(normalization="pcen")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="norm_time_s must be > 0 seconds; received 0.0"):
        TrainConfig(norm_time_s=0.0)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--normalization", "pcen", "--out", "run"])
    assert "--normalization: invalid choice: 'pcen'" in capsys.readouterr().err


def test_speed_perturbation_is_a_share_and_the_vad_corpus_refuses_it(tmp_path):
    with pytest.raises(ValueError, match="speed_perturb is a share of the training strings, 0 to 1; received 2.0"):
        TrainConfig(speed_perturb=2.0)
    with pytest.raises(ValueError, match="--speed-perturb is an option of the digits corpus"):
        get_task("vad").build_data(TrainConfig(speed_perturb=0.5), tmp_path, jobs=1, progress=False)
    assert not list(tmp_path.iterdir())  # refused before anything was built


def test_spec_augment_sets_whole_bands_and_spans_of_each_clip_to_the_mean_and_nothing_else():
    torch.manual_seed(0)
    frames, mean = torch.randn(64, 300, 40), torch.linspace(-3, 3, 40)
    kept = frames.clone()
    out = spec_augment(frames, mean, freq_masks=2, freq_mask_bins=8, time_masks=2, time_mask_frames=20)
    assert torch.equal(frames, kept)  # a new tensor; the batch is left as it was
    masked = out == mean  # random input meets the mean only where it was masked
    bands, spans = masked.all(dim=1), masked.all(dim=2)  # (B, F) bins masked at every frame, (B, T) frames in every bin
    assert torch.equal(masked, bands[:, None, :] | spans[:, :, None])  # nothing else was touched
    assert torch.equal(out[~masked], frames[~masked])
    assert bands.sum(1).max() <= 2 * 8 and spans.sum(1).max() <= 2 * 20
    assert bands.any(1).float().mean() > 0.8 and spans.any(1).float().mean() > 0.8  # most clips got both kinds
    assert len({tuple(row.nonzero().flatten().tolist()) for row in bands}) > 32  # drawn clip by clip
    with pytest.raises(ValueError, match=r"expected frames \(B, T, F\) and mean \(F,\); received \(300, 40\)"):
        spec_augment(frames[0], mean, freq_masks=1, freq_mask_bins=8, time_masks=0, time_mask_frames=20)


def test_spec_augment_changes_what_training_learns_and_a_masked_run_is_reproducible(splits, tmp_path):
    train, valid = splits
    for run, masks in (("a", 2), ("b", 2), ("plain", 0)):
        cfg = tiny(epochs=1, freq_masks=masks, time_masks=masks)
        Trainer(cfg, get_task("vad"), tmp_path / run, progress=False).fit(train, valid)
    a, b, plain = (load_model(tmp_path / run / "last.pt").state_dict() for run in ("a", "b", "plain"))
    assert all(torch.equal(a[name], b[name]) for name in a)
    assert not all(torch.equal(a[name], plain[name]) for name in a if name.startswith("rnn"))


def test_spec_augment_settings_are_checked_and_offered_as_flags():
    with pytest.raises(ValueError, match="1 <= freq_mask_bins <= n_mels \\(40\\)"):
        TrainConfig(freq_masks=2, freq_mask_bins=41)
    with pytest.raises(ValueError, match="mask counts >= 0"):
        TrainConfig(time_masks=-1)
    args = build_parser().parse_args(["train", "--freq-masks", "2", "--time-mask-frames", "30", "--out", "run"])
    assert (args.freq_masks, args.time_mask_frames) == (2, 30)


def test_ema_follows_each_step_with_its_decay_and_is_what_is_validated_and_saved(splits, tmp_path):
    train, valid = splits
    trainer = Trainer(tiny(ema_decay=0.9), get_task("vad"), tmp_path, progress=False)
    trainer.model.set_normalization(*train.feature_stats())
    batch = collate([train[i] for i in range(8)], trainer.task)
    assert trainer.served() is trainer.model  # no step yet: nothing averaged
    trainer.train_step(batch, lr=1e-2)
    first = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert all(torch.equal(v, first[k]) for k, v in trainer.served().state_dict().items())  # the first step copies
    trainer.train_step(batch, lr=1e-2)
    for name, value in trainer.served().state_dict().items():
        expected = 0.9 * first[name] + 0.1 * trainer.model.state_dict()[name]
        torch.testing.assert_close(value, expected, msg=name)
    assert not torch.equal(trainer.served().state_dict()["rnn.weight_hh_l0"], trainer.model.rnn.weight_hh_l0)

    trainer.fit(train, valid)
    saved = load_model(tmp_path / "last.pt").state_dict()
    assert all(torch.equal(v, saved[k]) for k, v in trainer.served().state_dict().items())
    assert trainer.evaluate(valid)["loss"] == pytest.approx(trainer.history[-1]["loss"])


def test_an_interrupted_ema_run_resumes_to_the_same_average(splits, tmp_path):
    train, valid = splits
    Trainer(tiny(ema_decay=0.9), get_task("vad"), tmp_path / "full", progress=False).fit(train, valid)
    interrupt_in_epoch_two(tiny(ema_decay=0.9), tmp_path / "cut", train, valid)
    Trainer(tiny(ema_decay=0.9), get_task("vad"), tmp_path / "cut", progress=False).fit(train, valid)
    full, again = load_model(tmp_path / "full" / "last.pt"), load_model(tmp_path / "cut" / "last.pt")
    for (name, a), b in zip(full.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name  # the average was restored with the weights, not restarted
    with pytest.raises(ValueError, match="ema_decay must be 0 \\(off\\) or in \\(0, 1\\)"):
        TrainConfig(ema_decay=1.0)
