"""The multi-stream engine gives every stream exactly what a Session alone would give it."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from conftest import make_model, needs_ort, noisy_tone
from streamseq import FrameOutputs, Session
from streamseq.models.config import CELLS
from streamseq.streaming.engine import Engine


def alone(model, parts, rate) -> FrameOutputs:
    session = Session(model)
    return FrameOutputs.concat([session.accept(p, sample_rate=rate) for p in parts] + [session.finish()])


def simulate(engine: Engine, seed: int, ticks: int = 100):
    """Random joins, leaves, rates and chunk sizes; ticks that sometimes skip step()."""
    rng = np.random.default_rng(seed)
    live, fed, got, rate_of, signal_of = {}, {}, {}, {}, {}
    for _ in range(ticks):
        if not live or rng.random() < 0.35:
            sid = engine.open()
            rate_of[sid] = int(rng.choice([16000, 16000, 8000, 44100]))
            signal_of[sid] = noisy_tone(1.5, rate=rate_of[sid], seed=int(rng.integers(1000)))
            live[sid], fed[sid], got[sid] = 0, [], []
        for sid in list(live):
            size = int(rng.choice([rng.integers(1, 40), rng.integers(40, 2500), rng.integers(2500, 9000)]))
            part = signal_of[sid][live[sid] : live[sid] + size]
            if part.size == 0 or rng.random() < 0.04:  # leaves (sometimes mid-signal)
                got[sid].append(engine.close(sid))
                del live[sid]
                continue
            engine.accept(sid, part, sample_rate=rate_of[sid])
            fed[sid].append(part)
            live[sid] += size
        if rng.random() < 0.75:
            for sid, out in engine.step().items():
                got[sid].append(out)
    for sid in list(live):
        got[sid].append(engine.close(sid))
    return fed, got, rate_of


@pytest.mark.parametrize("cell,norm", [*((cell, "global") for cell in CELLS), ("gru", "running")])
@pytest.mark.parametrize("backend,delay", [("eager", 0), ("eager", 3), pytest.param("onnx", 2, marks=needs_ort)])
def test_each_stream_equals_a_separate_session_under_random_joins_leaves_and_chunks(backend, delay, cell, norm):
    model = make_model("uni", delay=delay, hidden=32, cell=cell, normalization=norm)
    engine = Engine(model, backend)
    fed, got, rate_of = simulate(engine, seed=delay)
    assert len(engine) == 0 and len(got) > 12
    for sid, outs in got.items():
        for a, b in pairwise(outs):
            assert b.start_frame == a.start_frame + len(a)  # consecutive, no gaps or repeats
        streamed, expected = FrameOutputs.concat(outs), alone(model, fed[sid], rate_of[sid])
        assert streamed.start_frame == 0 and streamed.values.shape == expected.values.shape
        if len(expected):
            assert np.abs(streamed.values - expected.values).max() < 1e-5


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("backend", ["eager", "torchscript", pytest.param("onnx", marks=needs_ort)])
def test_a_lone_stream_in_10ms_chunks_equals_a_session_with_every_backend(backend, cell):
    model, signal = make_model("uni", delay=1, hidden=32, cell=cell), noisy_tone(0.4, seed=4)
    engine = Engine(model, backend)
    sid, outs = engine.open(), []
    for part in np.split(signal, 40):  # one frame per tick: the small-FFT path
        engine.accept(sid, part, sample_rate=16000)
        outs += list(engine.step().values())
    outs.append(engine.close(sid))
    streamed, expected = FrameOutputs.concat(outs), alone(model, [signal], 16000)
    assert engine.backend == backend and streamed.values.shape == expected.values.shape == (40, 1)
    assert np.abs(streamed.values - expected.values).max() < 1e-5


def count_calls(engine: Engine) -> list[tuple[int, int]]:
    calls, step = [], engine._step

    def spy(frames, h):
        calls.append(frames.shape[:2])
        return step(frames, h)

    engine._step = spy
    return calls


def test_equal_chunks_of_all_streams_are_stepped_in_one_batched_call():
    engine = Engine(make_model("uni"), "eager")
    ids = [engine.open() for _ in range(5)]
    calls = count_calls(engine)
    for sid in ids:
        engine.accept(sid, noisy_tone(0.03, seed=sid), sample_rate=16000)  # 480 samples: 3 frames each
    out = engine.step()
    assert calls == [(5, 3)]
    assert sorted(out) == ids and all(len(o) == 3 for o in out.values())


def test_streams_with_different_frame_counts_step_as_a_staircase_without_padding():
    engine = Engine(make_model("uni"), "eager")
    ids = [engine.open() for _ in range(4)]
    calls = count_calls(engine)
    for sid, ms in zip(ids, (20, 50, 50, 10), strict=True):
        engine.accept(sid, noisy_tone(ms / 1000, seed=sid), sample_rate=16000)
    out = engine.step()
    assert calls == [(4, 1), (3, 1), (2, 3)]  # frames 0..1 for all, 1..2 for three, 2..5 for two
    assert [len(out[sid]) for sid in ids] == [2, 5, 5, 1]


def test_streams_without_a_complete_frame_are_left_out_of_the_tick():
    model = make_model("uni")
    engine = Engine(model, "eager")
    quiet, busy = engine.open(), engine.open()
    engine.accept(quiet, noisy_tone(0.005), sample_rate=16000)  # half a hop: no frame yet
    engine.accept(busy, noisy_tone(0.1), sample_rate=16000)
    out = engine.step()
    assert list(out) == [busy] and engine.streams[quiet].frames_in == 0
    assert not engine.streams[quiet].hidden.any()
    assert engine.step() == {}


def test_close_flushes_the_output_delay_and_forgets_the_stream():
    model = make_model("uni", delay=3)
    engine = Engine(model, "eager")
    sid = engine.open()
    engine.accept(sid, noisy_tone(0.1), sample_rate=16000)  # 10 frames
    assert len(engine.step()[sid]) == 10 - 3
    tail = engine.close(sid)
    assert (tail.start_frame, len(tail)) == (7, 3)
    assert sid not in engine
    with pytest.raises(KeyError, match="no open stream"):
        engine.accept(sid, noisy_tone(0.1), sample_rate=16000)


def test_discarding_a_stream_leaves_the_others_untouched():
    model = make_model("uni")
    engine = Engine(model, "eager")
    gone, kept = engine.open(), engine.open()
    engine.accept(gone, noisy_tone(0.1, seed=1), sample_rate=16000)
    engine.accept(kept, noisy_tone(0.1, seed=2), sample_rate=16000)
    engine.discard(gone)
    outs = [engine.step()[kept], engine.close(kept)]
    assert gone not in engine and len(engine) == 0
    assert np.abs(FrameOutputs.concat(outs).values - alone(model, [noisy_tone(0.1, seed=2)], 16000).values).max() < 1e-5


def test_closing_a_stream_that_got_no_audio_returns_no_frames():
    engine = Engine(make_model("uni", delay=2), "eager")
    assert len(engine.close(engine.open())) == 0


def test_a_bad_chunk_is_refused_without_disturbing_the_stream():
    model = make_model("uni", delay=1)
    engine = Engine(model, "eager")
    sid, signal = engine.open(), noisy_tone(0.3)
    engine.accept(sid, signal[:1000], sample_rate=16000)
    with pytest.raises(ValueError, match="NaN"):
        engine.accept(sid, np.full(100, np.nan, np.float32), sample_rate=16000)
    with pytest.raises(ValueError, match="started at 16000 Hz"):
        engine.accept(sid, signal[:100], sample_rate=8000)
    outs = [engine.step()[sid]]
    engine.accept(sid, signal[1000:], sample_rate=16000)
    outs += [engine.step()[sid], engine.close(sid)]
    expected = alone(model, [signal], 16000)
    assert np.abs(FrameOutputs.concat(outs).values - expected.values).max() < 1e-5


def test_engine_over_a_bidirectional_model_fails_at_construction(bi_model):
    with pytest.raises(ValueError, match="unidirectional"):
        Engine(bi_model)


def test_unknown_backend_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="eager, torchscript, onnx; received 'tensorrt'"):
        Engine(make_model("uni"), "tensorrt")
