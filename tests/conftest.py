"""Shared fixtures: small real models with realistic normalisation, and test signals."""

from __future__ import annotations

import signal

import numpy as np
import pytest
import torch

from streamseq.features import FeatureConfig, compute_features
from streamseq.models import ModelConfig, build_model
from streamseq.models.export import onnx_available

needs_ort = pytest.mark.skipif(
    not onnx_available(), reason="onnx / onnxruntime not installed: pip install 'streamseq[export]'"
)


def default_ctrl_c() -> None:
    """In the child, before exec: Ctrl-C handled as when started from a terminal. A child inherits an
    ignored or blocked SIGINT from the test process, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def chunk(signal: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """Split ``signal`` by cycling through ``sizes`` (the last chunk may be shorter)."""
    parts, i, j = [], 0, 0
    while i < len(signal):
        parts.append(signal[i : i + sizes[j % len(sizes)]])
        i += sizes[j % len(sizes)]
        j += 1
    return parts


def noisy_tone(seconds: float, rate: int = 16000, seed: int = 0, channels: int = 0) -> np.ndarray:
    """A tone burst in noise: some structure for the features to follow."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    x = 0.05 * rng.standard_normal(t.size) + 0.3 * np.sin(2 * np.pi * 440 * t) * (np.sin(2 * np.pi * 2 * t) > 0)
    x = x.astype(np.float32)
    return np.stack([x, 0.5 * x], axis=1) if channels else x


def make_model(kind: str = "uni", delay: int = 0, seed: int = 0, hidden: int = 16, outputs: int = 1, cell: str = "gru",
               normalization: str = "global"):
    """A small randomly initialised model whose normalisation comes from real features; a VAD model
    (task "vad", output "speech") when it has one output. A running normalisation gets a short time
    constant (0.1 s) so that test signals of a fraction of a second exercise it."""
    torch.manual_seed(seed)
    config = ModelConfig(kind=kind, cell=cell, hidden_size=hidden, output_delay=delay, n_outputs=outputs,
                         normalization=normalization, norm_time_s=1.0 if normalization == "global" else 0.1)
    model = build_model(config, FeatureConfig())
    feats = compute_features(noisy_tone(1.0, seed=seed + 1))
    model.set_normalization(feats.mean(0), feats.std(0))
    if outputs == 1:
        model.set_task("vad", ["speech"])
    return model.eval()


@pytest.fixture
def uni_model():
    return make_model("uni")


@pytest.fixture
def bi_model():
    return make_model("bi")


@pytest.fixture(autouse=True)
def one_thread():
    """Small tensors: one thread is fastest, and immune to busy cores (OpenMP workers spin); like
    `streamseq mic` (--threads 1). Code under test that sets its own thread count (the Trainer)
    still does so; each test starts on one thread again."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
