"""The streaming step as a deployable unit: TorchScript and ONNX export, and step runners.

Dimension legend: B streams, n new frames, F log-mel bins, L layers, H hidden size, S state
width (:attr:`ModelConfig.state_size`: H, or 2H for an LSTM; F more with a running normalisation), C outputs.

The exported step is everything a session runs on new frames of B independent streams::

    (frames (B, n, F) raw log-mel, h (L, B, S)) -> (values (B, n, C), h (L, B, S))

with normalisation, recurrent layer (GRU, LSTM or RNN), head and output activation inside. The
state ``h`` is one array per step whatever the cell: an LSTM's hidden and cell states travel
packed on its last axis, ``h`` then ``c`` (:meth:`StreamingRNN.step` packs them), and a running
normalisation's mean rides in F more columns of layer 0. A stream starts
at ``h = 0`` (:func:`initial_state`). As with ``StreamingRNN.step``, an output delay of k frames is *not*
inside: the first k values of a stream are warm-up, and k :meth:`FrameModel.padding_frames`
flush the end (``export.json`` beside the files records k, the padding frame and the feature
settings). onnxruntime aborts the whole process (no exception) on an empty input, ``n = 0``
or ``B = 0``: never feed one to the graph; :class:`OnnxStep` answers those itself.

A *step function* (:data:`StepFn`) is the same contract over float32 numpy arrays. The
multi-stream engine runs any of :data:`BACKENDS` through it, mostly in its ``"spectrum"`` form
(:class:`SpectrumStepModule`): the power, mel and log are inside too, and only the FFT stays
outside, so one call does everything after the FFT.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from streamseq.features.logmel import log_mel_spectrum, power_filterbank
from streamseq.models.recurrent import FrameModel, StreamingRNN
from streamseq.version import __version__

StepFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""``(frames (B, n, F) or spectrum (B, n, n_fft + 2), h (L, B, S)) -> (values (B, n, C), h (L, B, S))``, float32."""

BACKENDS = ("eager", "torchscript", "onnx")
FORMATS = {"torchscript": "step.ts", "onnx": "step.onnx"}
INPUTS = ("frames", "spectrum")  # what a step takes besides h
OUTPUT_NAMES = ["values", "h_out"]
ONNX_OPSET = 17
_INSTALL_HINT = "pip install 'streamseq[export]' (onnx, onnxruntime)"
_STATE_LAYOUT = {  # export.json "state": what h holds, by cell; zeros start a stream
    "gru": "GRU hidden state h: h[..., :{H}]",
    "rnn": "RNN hidden state h: h[..., :{H}]",
    "lstm": "LSTM hidden and cell state packed on the last axis, h then c: h[..., :{H}] is h, h[..., {H}:{S}] is c",
}
_RUNNING_LAYOUT = ("; then the running mean of the globally normalised frames, per mel bin: h[0, :, {S}:] "
                   "(h[1:, :, {S}:] stay zero)")


class StepModule(nn.Module):
    """``(frames (B, n, F), h (L, B, S)) -> (values (B, n, C), h (L, B, S))`` of a streaming model."""

    def __init__(self, model: FrameModel) -> None:
        super().__init__()
        if not isinstance(model, StreamingRNN):
            raise ValueError(
                f"only a unidirectional model has a streaming step to export; this one is kind={model.config.kind!r}"
            )
        self.model = model  # used as it is (eval mode): exporting does not change it

    def forward(self, frames: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, h = self.model.step(frames, h)
        return self.model.activate(logits), h


class SpectrumStepModule(nn.Module):
    """``(spectrum (B, n, n_fft + 2), h) -> (values, h)``: :func:`log_mel_spectrum`, then the step.

    ``spectrum`` holds the real and imaginary parts of ``rfft(window * samples)`` of each frame
    (a complex64 array viewed as float32); whoever calls it runs the FFT.
    """

    fbank: torch.Tensor  # (n_fft + 2, F) buffer

    def __init__(self, model: FrameModel) -> None:
        super().__init__()
        self.step = StepModule(model)
        self.feature_config = model.feature_config
        self.register_buffer("fbank", power_filterbank(model.feature_config))  # (n_fft + 2, F)

    def forward(self, spectrum: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.step(log_mel_spectrum(spectrum, self.feature_config, self.fbank), h)


def _state_layout(model: FrameModel) -> str:
    """What ``h`` holds, in words, for export.json."""
    cfg = model.config
    layout = _STATE_LAYOUT[cfg.cell].format(H=cfg.hidden_size, S=cfg.cell_state_size)
    return layout + ("" if cfg.normalization == "global" else _RUNNING_LAYOUT.format(S=cfg.cell_state_size))


def _module(model: FrameModel, inputs: str) -> nn.Module:
    if inputs not in INPUTS:
        raise ValueError(f"inputs must be one of {', '.join(INPUTS)}; received {inputs!r}")
    return StepModule(model) if inputs == "frames" else SpectrumStepModule(model)


def initial_state(model: FrameModel, batch: int = 1) -> np.ndarray:
    """The state of ``batch`` new streams, ``(L, batch, S)`` zeros (S: ``model.config.state_size``)."""
    return np.zeros((model.config.num_layers, batch, model.config.state_size), np.float32)


def example_inputs(
    model: FrameModel, batch: int = 2, frames: int = 3, seed: int = 0, inputs: str = "frames"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Realistic inputs and a non-zero state: frames spread like the training features, or the
    spectra of noise windows."""
    g = torch.Generator().manual_seed(seed)
    h = 0.5 * torch.randn(model.config.num_layers, batch, model.config.state_size, generator=g).tanh()
    if inputs == "spectrum":
        cfg = model.feature_config
        noise = 0.1 * torch.randn(batch, frames, cfg.win_length, generator=g) * torch.hann_window(cfg.win_length)
        return torch.view_as_real(torch.fft.rfft(noise, n=cfg.n_fft)).flatten(-2), h
    x = model.feat_mean + model.feat_std * torch.randn(batch, frames, model.config.n_inputs, generator=g)
    return x, h


@contextmanager
def _quiet_export() -> Iterator[None]:
    """Both exporters used here are deprecated in torch >= 2.9, yet they are the ones that give
    a native ONNX GRU / LSTM / RNN node and a loadable TorchScript archive; hide only those notices."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\..*")
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*(legacy|TorchScript|jit).*")
        # nn.GRU's (LSTM's, RNN's) own shape checks become constants of the trace; the data path holds no shape
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        # h is an input of the graph, which is exactly what this warning asks for
        warnings.filterwarnings("ignore", message=r"Exporting a model to ONNX with a batch_size other than 1")
        yield


def to_torchscript(model: FrameModel, inputs: str = "frames") -> torch.jit.ScriptModule:
    """Trace the step (the trace holds no shape: any B and n run)."""
    module = _module(model, inputs)
    with _quiet_export(), torch.no_grad():
        return torch.jit.trace(module, example_inputs(model, inputs=inputs), check_trace=False)


def load_torchscript(path: str | os.PathLike) -> torch.jit.ScriptModule:
    """Load a step written by :func:`export` (a :class:`StepModule` trace)."""
    with _quiet_export():
        return torch.jit.load(str(path), map_location="cpu")


def to_onnx(model: FrameModel, f: str | os.PathLike | io.BytesIO, inputs: str = "frames") -> None:
    """Write the step as ONNX (opset 17, native GRU / LSTM / RNN nodes) with dynamic B and n axes.

    The graph's inputs are named ``inputs`` (``"frames"`` or ``"spectrum"``) and ``"h"``.
    """
    if importlib.util.find_spec("onnx") is None:
        raise ModuleNotFoundError(f"exporting to ONNX needs the onnx package: {_INSTALL_HINT}", name="onnx")
    module = _module(model, inputs)
    dynamic = {inputs: {0: "B", 1: "n"}, "h": {1: "B"}, "values": {0: "B", 1: "n"}, "h_out": {1: "B"}}
    with _quiet_export(), torch.no_grad():
        torch.onnx.export(
            module, example_inputs(model, inputs=inputs),
            # torch annotates f as a path only; the dynamo=False exporter writes to a BytesIO as well
            f,  # type: ignore[arg-type]
            dynamo=False, input_names=[inputs, "h"],
            output_names=OUTPUT_NAMES, dynamic_axes=dynamic, opset_version=ONNX_OPSET,
        )


def onnx_available() -> bool:
    """Whether the onnx backend can run here: onnx (to export) and onnxruntime (to run)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def _onnxruntime():
    try:
        import onnxruntime
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(f"the ONNX step needs onnxruntime: {_INSTALL_HINT}", name=exc.name) from exc
    return onnxruntime


class OnnxStep:
    """A :data:`StepFn` running an exported ONNX step in onnxruntime (CPU).

    An empty input (``n = 0`` frames or ``B = 0`` streams) returns empty ``values (B, n, C)``
    and ``h`` unchanged without calling onnxruntime, which would abort the process.
    """

    def __init__(self, source: str | os.PathLike | bytes, threads: int | None = None) -> None:
        ort = _onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        # idle workers sleep instead of spinning: a spinning pool starves torch's threads (and
        # everything else) on a busy machine; ticks of many streams got 30x slower with spinning
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        source = source if isinstance(source, bytes) else str(source)
        self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name  # "frames" or "spectrum"
        self.n_outputs: int = self.session.get_outputs()[0].shape[-1]  # C, static in the graph

    def __call__(self, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if x.shape[0] == 0 or x.shape[1] == 0:
            return np.zeros((*x.shape[:2], self.n_outputs), np.float32), h.copy()
        values, h = self.session.run(OUTPUT_NAMES, {self.input_name: x, "h": h})
        return values, h


def torch_step(module: nn.Module) -> StepFn:
    """A :data:`StepFn` over a torch step module (eager :class:`StepModule` or TorchScript)."""

    def step(x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            values, h_new = module(torch.from_numpy(x), torch.from_numpy(h))
        return values.numpy(), h_new.numpy()

    return step


_ONNX_CACHE: weakref.WeakKeyDictionary[FrameModel, dict] = weakref.WeakKeyDictionary()
"""Exported onnx steps per loaded model. A model must not be trained further once it has been
exported (its cached step would be stale); loaded models never are."""
_ONNX_CACHE_LOCK = threading.Lock()  # sessions opened in several threads export each model once


def step_function(
    model: FrameModel, backend: str = "eager", threads: int | None = None, inputs: str = "frames"
) -> StepFn:
    """The step of ``model`` over ``inputs`` (``"frames"`` or ``"spectrum"``) run by ``backend``
    (one of :data:`BACKENDS`), exported in memory.

    ``threads`` (onnx only) defaults to ``torch.get_num_threads()`` at the time of the call.
    """
    if backend == "eager":
        return torch_step(_module(model, inputs))
    if backend == "torchscript":
        return torch_step(to_torchscript(model, inputs))
    if backend == "onnx":
        if not onnx_available():
            raise ModuleNotFoundError(f"the onnx backend needs onnx and onnxruntime: {_INSTALL_HINT}")
        key = (inputs, threads)
        with _ONNX_CACHE_LOCK:
            cache = _ONNX_CACHE.setdefault(model, {})
            if key not in cache:  # export once per model (~0.3 s); sessions opened later reuse it
                buffer = io.BytesIO()
                to_onnx(model, buffer, inputs)
                cache[key] = OnnxStep(buffer.getvalue(), threads)
            return cache[key]
    raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; received {backend!r}")


def max_abs_diff(
    model: FrameModel, step: StepFn, batch: int = 3, frames: int = 7, seed: int = 1, inputs: str = "frames"
) -> float:
    """Largest difference between ``step`` and the eager model, values and state alike."""
    x, h = (t.numpy() for t in example_inputs(model, batch, frames, seed, inputs))
    ref_values, ref_h = torch_step(_module(model, inputs))(x, h)
    values, h_new = step(x, h)
    return float(max(np.abs(values - ref_values).max(), np.abs(h_new - ref_h).max()))


def export(
    model: FrameModel, out_dir: str | os.PathLike, formats: tuple[str, ...] = ("torchscript", "onnx"),
    tolerance: float = 1e-5,
) -> dict[str, Path]:
    """Write the step in each format to ``out_dir`` plus ``export.json``; verify each against eager.

    Every written file is loaded back (TorchScript with ``torch.jit.load``, ONNX with
    onnxruntime when installed) and run on different B and n than it was traced with.
    ``export.json`` records what a deployment needs: the signature, the state shape and what
    it holds (``state``: an LSTM's h and c packed on the last axis), the output delay k and how
    to flush it (k padding frames, each ``padding_frame``), and that the ONNX graph must never
    run on ``n = 0`` or ``B = 0`` (onnxruntime aborts the process).

    Returns:
        ``{format: path}``, plus ``"meta"`` for ``export.json``.
    Raises:
        ValueError: unknown format, or an exported step that disagrees with eager by more than
            ``tolerance``.
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ValueError(f"formats must be among {', '.join(FORMATS)}; received {list(formats)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    checks: dict[str, float | None] = {}
    if "torchscript" in formats:
        paths["torchscript"] = out / FORMATS["torchscript"]
        to_torchscript(model).save(str(paths["torchscript"]))
        checks["torchscript"] = max_abs_diff(model, torch_step(load_torchscript(paths["torchscript"])))
    if "onnx" in formats:
        paths["onnx"] = out / FORMATS["onnx"]
        to_onnx(model, paths["onnx"])
        try:
            checks["onnx"] = max_abs_diff(model, OnnxStep(paths["onnx"]))
        except ModuleNotFoundError:
            checks["onnx"] = None  # written but not verified: no onnxruntime here
    bad = {k: v for k, v in checks.items() if v is not None and not v <= tolerance}
    if bad:
        raise ValueError(f"exported step disagrees with eager by more than {tolerance}: {bad}")
    meta = {
        "format": "streamseq-step",
        "streamseq_version": __version__,
        "files": {k: p.name for k, p in paths.items()},
        "signature": "(frames (B, n, F) raw log-mel float32, h (L, B, S) float32) "
                     "-> (values (B, n, C), h_out (L, B, S))",
        "inputs": ["frames", "h"], "outputs": OUTPUT_NAMES,
        "state_shape": [model.config.num_layers, "B", model.config.state_size],
        "state": _state_layout(model),
        "output_delay_frames": model.config.output_delay,
        "flush_padding_frames": model.config.output_delay,  # feed these at end of stream: last k outputs
        "padding_frame": model.padding_frames(1)[0].tolist(),  # (F,) raw frame: the global mean
        "empty_input": "n = 0 or B = 0: return empty values (B, n, C) and h unchanged without running "
                       "the graph (onnxruntime aborts the process on them)",
        "activation": model.config.activation,
        "task": model.task, "labels": list(model.labels), "task_config": dict(model.task_config),  # decoder settings
        "model": model.config.to_dict(), "features": model.feature_config.to_dict(),
        "max_abs_diff_vs_eager": checks,
    }
    paths["meta"] = out / "export.json"
    paths["meta"].write_text(json.dumps(meta, indent=1) + "\n")
    return paths
