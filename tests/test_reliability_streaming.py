"""Streaming under odd rates, threads, refused chunks, ambiguous layouts and empty steps."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest
import torch
import torchaudio

import streamseq
from conftest import chunk, make_model, needs_ort, noisy_tone
from streamseq import BufferedProcessor, Engine, FrameOutputs, Session
from streamseq.audio.resample import SincResampler
from streamseq.features import FeatureConfig, StreamingFrontend, compute_features
from streamseq.models import ModelConfig, build_model
from streamseq.models.export import export, initial_state, load_torchscript, step_function, torch_step

ODD_RATES = {16001: 16000, 44101: 44100, 48001: 48000, 7999: 8000}  # odd rate: the common rate beside it


def run(session: Session | BufferedProcessor, parts: list[np.ndarray], rate: int) -> FrameOutputs:
    return FrameOutputs.concat([session.accept(p, sample_rate=rate) for p in parts] + [session.finish()])


def run_threads(*targets) -> list[BaseException]:
    """Run each target in its own thread; return what they raised."""
    errors: list[BaseException] = []

    def guarded(target) -> None:
        try:
            target()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.fixture
def fast_thread_switching():
    """Switch threads every microsecond, so races show up within a few hundred calls."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


# ----------------------------------------------------------------------------- A: odd sample rates
@pytest.mark.parametrize("rate", ODD_RATES)
def test_odd_sample_rates_resample_with_a_small_filter_and_buffer(rate):
    frontend = StreamingFrontend()
    frontend.accept(np.zeros(513, np.float32), sample_rate=rate)  # was 23 s and 8.8 GB at 16001 Hz
    for part in chunk(noisy_tone(0.3, rate=rate), [round(0.032 * rate)]):
        frontend.accept(part, sample_rate=rate)
        assert frontend.resampler.buffered <= 64  # the filter's reach, not a block of the reduced ratio
    assert frontend.resampler.filter_size <= 2**20  # was new x orig: 256 million at 16001 Hz


@pytest.mark.parametrize("rate", ODD_RATES)
def test_odd_sample_rates_give_frames_after_every_32ms_chunk_like_the_common_rate_beside_them(rate):
    model, common = make_model("uni"), ODD_RATES[rate]

    def arrivals(r: int) -> np.ndarray:
        session = Session(model, "eager")
        parts = chunk(noisy_tone(1.0, rate=r, seed=1), [round(0.032 * r)])[:-1]
        return np.cumsum([len(session.accept(p, sample_rate=r)) for p in parts])

    odd, usual = arrivals(rate), arrivals(common)
    assert np.diff(odd).min() >= 2  # 3.2 frames per chunk: never a silent chunk then a burst
    assert np.abs(odd - usual).max() <= 1  # frames come out when they do at the common rate


def test_a_session_at_an_odd_rate_gives_the_same_frames_for_any_chunking():
    model, signal = make_model("uni", delay=2), noisy_tone(0.7, rate=44101, seed=5, channels=2)
    whole = run(Session(model, "eager"), [signal], 44101)
    for sizes in ([1, 37, 4410], [441], [999, 3, 20000]):
        chunked = run(Session(model, "eager"), chunk(signal, sizes), 44101)
        assert chunked.values.shape == whole.values.shape == (70, 1)
        assert np.abs(chunked.values - whole.values).max() < 1e-6


@pytest.mark.parametrize("rate", [12345, 44100])
def test_the_odd_rate_resampler_equals_torchaudio_where_torchaudio_can_run(rate):
    x = torch.from_numpy(noisy_tone(0.3, rate=rate, seed=2))
    reference = torchaudio.functional.resample(x.double(), rate, 16000).float()
    resampler = SincResampler(rate, 16000)
    streamed = torch.cat([resampler.accept(p) for p in torch.split(x, 101)] + [resampler.flush()])
    assert streamed.shape == reference.shape
    assert (streamed - reference).abs().max() < 1e-6


@pytest.mark.parametrize("rate", [3999, 384001, float("nan"), float("inf"), 16000.5, "16000"])
def test_sample_rates_outside_4k_to_384k_or_not_whole_hz_are_refused_naming_the_range(rate):
    with pytest.raises(ValueError, match=rf"from 4000 to 384000; received {rate!r}"):
        Session(make_model("uni"), "eager").accept(np.zeros(160, np.float32), sample_rate=rate)


# ----------------------------------------------------------------------------- B: threads
def test_two_threads_feeding_one_session_get_every_frame_exactly_once(fast_thread_switching):
    model = make_model("uni", delay=2)
    block = noisy_tone(0.032, seed=3)  # every chunk is this block: any interleaving is the same stream
    session, outs = Session(model, "eager"), []

    def feed() -> None:
        for _ in range(150):
            outs.append(session.accept(block, sample_rate=16000))

    assert run_threads(feed, feed) == []
    outs = sorted(outs + [session.finish()], key=lambda o: o.start_frame)
    for a, b in itertools.pairwise(outs):
        assert b.start_frame == a.start_frame + len(a)  # no frame twice, none missing
    expected = run(Session(model, "eager"), [block] * 300, 16000)
    got = FrameOutputs.concat(outs)
    assert got.start_frame == 0 and got.values.shape == expected.values.shape == (960, 1)
    assert np.abs(got.values - expected.values).max() < 1e-6


def test_finish_and_reset_racing_accept_complete_cleanly(fast_thread_switching):
    model, block = make_model("uni"), noisy_tone(0.032, seed=4)
    session, fed = Session(model, "eager"), threading.Event()

    def feed() -> None:
        try:
            for _ in range(300):
                session.accept(block, sample_rate=16000)
        finally:
            fed.set()

    def end() -> None:
        for i in itertools.count():
            if fed.is_set():
                return
            session.finish() if i % 2 else session.reset()

    assert run_threads(feed, end) == []
    session.reset()
    assert np.array_equal(run(session, [block], 16000).values, run(Session(model, "eager"), [block], 16000).values)


def test_engine_streams_fed_from_several_threads_equal_lone_sessions(fast_thread_switching):
    model = make_model("uni", delay=1, hidden=24)
    engine = Engine(model, "eager")
    rates = [16000, 8000, 44100, 16000]
    parts = [chunk(noisy_tone(0.6, rate=r, seed=i), [round(r / 50), 37, 1500]) for i, r in enumerate(rates)]
    ids = [engine.open() for _ in rates]
    got: dict[int, list[FrameOutputs]] = {sid: [] for sid in ids}

    def drive(i: int) -> None:
        for part in parts[i]:
            engine.accept(ids[i], part, sample_rate=rates[i])
            for sid, out in engine.step().items():  # any thread's tick serves every stream
                got[sid].append(out)
        got[ids[i]].append(engine.close(ids[i]))

    assert run_threads(*[lambda i=i: drive(i) for i in range(len(rates))]) == []
    assert len(engine) == 0
    for i, sid in enumerate(ids):
        streamed = FrameOutputs.concat(sorted(got[sid], key=lambda o: o.start_frame))
        alone = run(Session(model, "eager"), parts[i], rates[i])
        assert streamed.start_frame == 0 and streamed.values.shape == alone.values.shape == (60, 1)
        assert np.abs(streamed.values - alone.values).max() < 1e-5


# ----------------------------------------------------------------------------- C: refused chunks
@pytest.mark.parametrize(
    "bad",
    [
        np.full(100, np.nan, np.float32),
        np.array([0.1, np.inf], np.float32),
        np.zeros(100, np.complex64),
        np.zeros((10, 2, 2), np.float32),
        np.zeros(0, np.float32),
    ],
    ids=["nan", "inf", "dtype", "shape", "empty"],
)
def test_a_refused_first_chunk_leaves_the_stream_unbound_and_unchanged(bad):
    model, signal = make_model("uni", delay=1), noisy_tone(0.3, seed=7)
    session = Session(model, "eager")
    with pytest.raises(ValueError):
        session.accept(bad, sample_rate=48000)
    assert session.state.frontend.input_rate is None
    got = run(session, chunk(signal, [1000]), 16000)  # a different rate than the refused chunk's
    assert np.array_equal(got.values, run(Session(model, "eager"), chunk(signal, [1000]), 16000).values)


# ----------------------------------------------------------------------------- D: layout and scale
def test_a_short_chunk_with_more_columns_than_rows_is_refused_explaining_both_layouts():
    with pytest.raises(ValueError) as refused:
        Session(make_model("uni"), "eager").accept(np.zeros((2, 64), np.float32), sample_rate=16000)
    message = str(refused.value)
    assert "2 samples of 64 channels" in message and "64 samples of 2 channels" in message
    assert "channels_first=True" in message and "channels_first=False" in message


def test_channels_first_chunks_equal_the_same_audio_channels_last():
    model, stereo = make_model("uni"), noisy_tone(0.3, seed=8, channels=2)  # (n, 2)
    last = run(Session(model, "eager"), chunk(stereo, [64]), 16000)
    session, parts = Session(model, "eager"), [np.ascontiguousarray(p.T) for p in chunk(stereo, [64])]  # (2, 64)
    first = [session.accept(p, sample_rate=16000, channels_first=True) for p in parts] + [session.finish()]
    assert np.array_equal(FrameOutputs.concat(first).values, last.values)


def test_a_wide_short_chunk_said_to_be_channels_last_is_downmixed():
    frontend, wide = StreamingFrontend(), np.tile(noisy_tone(0.01, seed=9)[:, None], (1, 16))  # (160, 16)
    frames = torch.cat([frontend.accept(p, sample_rate=16000, channels_first=False) for p in np.split(wide, 40)])
    assert torch.allclose(frames, compute_features(wide[:, 0])[:1], atol=1e-5)


def test_float_samples_at_int16_scale_warn_once_per_stream():
    session, pcm = Session(make_model("uni"), "eager"), np.round(noisy_tone(0.1, seed=1) * 32767)
    with pytest.warns(UserWarning, match="Divide int16 PCM stored as floats by 32768") as caught:
        session.accept(pcm.astype(np.float32), sample_rate=16000)
        session.accept(pcm.astype(np.float32), sample_rate=16000)
    assert len([w for w in caught if issubclass(w.category, UserWarning)]) == 1
    session.finish()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a new stream at the right scale: no warning
        session.accept(pcm.astype(np.int16), sample_rate=16000)
        session.accept(pcm.astype(np.float32) / 32768, sample_rate=16000)
    with pytest.warns(UserWarning, match="expected in \\[-1, 1\\]"):
        Session(make_model("uni"), "eager").accept(pcm.astype(np.float64), sample_rate=16000)


# ----------------------------------------------------------------------------- E: no default rate
def test_accept_without_a_sample_rate_is_a_type_error(uni_model, bi_model):
    x = noisy_tone(0.05)
    engine = Engine(uni_model, "eager")
    calls = [
        lambda: Session(uni_model, "eager").accept(x), lambda: BufferedProcessor(bi_model).accept(x),
        lambda: engine.accept(engine.open(), x), lambda: StreamingFrontend().accept(x),
        lambda: Session(uni_model, "eager").accept(x, 16000),  # positional: refused too
    ]
    for call in calls:
        with pytest.raises(TypeError, match="sample_rate|positional"):
            call()


# ----------------------------------------------------------------------------- F: exported step
CHILD = """
import json, numpy as np, streamseq
from streamseq.models.export import initial_state, step_function
model = streamseq.load_model("vad-uni")
shapes = []
for inputs, width in (("frames", model.config.n_inputs), ("spectrum", model.feature_config.n_fft + 2)):
    step = step_function(model, "onnx", threads=1, inputs=inputs)
    for batch, frames in ((1, 0), (0, 3), (0, 0)):
        values, h = step(np.zeros((batch, frames, width), np.float32), initial_state(model, batch))
        shapes.append([list(values.shape), list(h.shape)])
print(json.dumps(shapes))
"""


@pytest.mark.slow
@needs_ort
def test_the_onnx_step_on_no_frames_or_no_streams_returns_empty_arrays_instead_of_aborting():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=300, env=env)
    assert child.returncode == 0, child.stderr[-2000:]  # onnxruntime's abort was exit code 134
    cfg = streamseq.load_model("vad-uni").config
    layers, hidden, outputs = cfg.num_layers, cfg.state_size, cfg.n_outputs
    expected = [[[1, 0, outputs], [layers, 1, hidden]], [[0, 3, outputs], [layers, 0, hidden]],
                [[0, 0, outputs], [layers, 0, hidden]]] * 2
    assert json.loads(child.stdout.splitlines()[-1]) == expected


@needs_ort
def test_threads_opening_sessions_at_once_share_one_exported_onnx_step(fast_thread_switching):
    model, steps = make_model("uni", seed=11), []
    assert run_threads(*[lambda: steps.append(step_function(model, "onnx", threads=1))] * 3) == []
    assert len(steps) == 3 and steps[1] is steps[0] and steps[2] is steps[0]


def test_export_json_says_how_many_padding_frames_flush_the_output_delay(tmp_path):
    model = make_model("uni", delay=3, hidden=24)
    meta = json.loads(export(model, tmp_path, ("torchscript",))["meta"].read_text())
    assert meta["flush_padding_frames"] == 3 and "n = 0 or B = 0" in meta["empty_input"]
    frames = compute_features(noisy_tone(0.2, seed=3)).numpy()[None]  # (1, T, F)
    padding = np.tile(np.float32(meta["padding_frame"]), (1, meta["flush_padding_frames"], 1))
    step = torch_step(load_torchscript(tmp_path / meta["files"]["torchscript"]))
    values, _ = step(np.concatenate([frames, padding], axis=1), initial_state(model))
    with torch.inference_mode():
        expected = model.activate(model(torch.from_numpy(frames))[0]).numpy()
    assert np.abs(values[0, 3:] - expected).max() < 1e-5  # the last 3 frames too, as export.json says


# ----------------------------------------------------------------------------- G: one home per constant
def test_sessions_take_the_frame_shift_and_rate_from_the_models_feature_config():
    cfg = FeatureConfig(sample_rate=8000, f_max=3800)  # hop 160 at 8 kHz: 20 ms frames
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="uni", hidden_size=16), cfg).eval()
    signal = noisy_tone(0.5, rate=8000, seed=2)
    out = run(Session(model, "eager"), chunk(signal, [333]), 8000)
    with torch.inference_mode():
        expected = model.activate(model(compute_features(signal, 8000, cfg)[None])[0]).numpy()
    assert out.frame_shift_s == 0.02 and np.allclose(out.times, np.arange(25) * 0.02)
    assert np.abs(out.values - expected).max() < 1e-5


# ----------------------------------------------------------------------------- H: half precision
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, np.float16], ids=str)
def test_half_precision_chunks_give_the_frames_of_their_values_as_float32(dtype):
    model, parts = make_model("uni"), chunk(noisy_tone(0.3, seed=9, channels=2), [480])  # (n, 2) stereo
    if isinstance(dtype, torch.dtype):
        half = [torch.from_numpy(p).to(dtype) for p in parts]
        exact = [p.float().numpy() for p in half]
    else:
        half = [p.astype(dtype) for p in parts]
        exact = [p.astype(np.float32) for p in half]
    got = run(Session(model, "eager"), half, 16000)
    assert np.array_equal(got.values, run(Session(model, "eager"), exact, 16000).values)


def test_a_bfloat16_numpy_array_from_ml_dtypes_is_accepted():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    signal = noisy_tone(0.1, seed=10)
    half = signal.astype(ml_dtypes.bfloat16)
    assert torch.equal(compute_features(half, 16000), compute_features(half.astype(np.float32), 16000))


def test_a_torch_dtype_numpy_lacks_is_refused_naming_it_and_the_fix():
    samples = torch.zeros(160).to(torch.float8_e4m3fn)
    with pytest.raises(ValueError, match=r"torch dtype torch\.float8_e4m3fn; expected .*bfloat16.*tensor\.float\(\)"):
        Session(make_model("uni"), "eager").accept(samples, sample_rate=16000)
