"""Training runs data-parallel under torchrun (DistributedDataParallel over gloo, 2 processes)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from streamseq import load_model

pytestmark = pytest.mark.slow  # torchrun: two training processes

SCRIPT = textwrap.dedent(
    """
    import sys, torch, torch.distributed as dist
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from test_training import tiny, write_split
    from streamseq.data.dataset import FeatureSet
    from streamseq.tasks import get_task
    from streamseq.training.trainer import Trainer

    dist.init_process_group("gloo")
    rank, root = dist.get_rank(), Path({root!r})
    vad = get_task("vad")
    train, valid = (FeatureSet(root / split, task=vad, progress=False) for split in ("train", "valid"))
    seen = []
    trainer = Trainer(tiny(epochs=2), get_task("vad"), root / "run", progress=False)
    original = trainer.train_step
    trainer.train_step = lambda batch, lr: (seen.append(batch["frames"].shape[0]), original(batch, lr))[1]
    trainer.fit(train, valid)
    torch.save({{"state": trainer.model.state_dict(), "frames_seen": sum(seen)}}, root / f"rank{{rank}}.pt")
    dist.destroy_process_group()
    """
)


def test_two_process_ddp_training_keeps_replicas_identical_and_splits_the_data(tmp_path):
    from test_training import write_split

    write_split(tmp_path / "train", 16, 0)
    write_split(tmp_path / "valid", 4, 1)
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT.format(tests=str(__import__("pathlib").Path(__file__).parent), root=str(tmp_path)))
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script)],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{i}.pt", weights_only=True) for i in (0, 1))
    for name, p0 in r0["state"].items():
        assert torch.equal(p0, r1["state"][name]), name  # gradients were averaged every step
    assert r0["frames_seen"] == r1["frames_seen"] == 2 * 8  # each rank: half of 16 clips per epoch
    model = load_model(tmp_path / "run" / "last.pt")  # only rank 0 writes checkpoints
    assert model.metadata["epoch"] == 2
