"""Sessions over a unidirectional model (any cell) equal one offline pass; the bi model only buffers."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import chunk, make_model, noisy_tone
from streamseq import BufferedProcessor, FrameOutputs, Session
from streamseq.features import compute_features
from streamseq.models.config import CELLS
from streamseq.streaming import finish_together

MODELS = {(cell, delay): make_model("uni", delay=delay, hidden=8, cell=cell) for cell in CELLS for delay in (0, 3)}
MODELS |= {("gru-running", delay): make_model("uni", delay=delay, hidden=8, normalization="running")
           for delay in (0, 3)}


def offline(model, signal, rate=16000) -> np.ndarray:
    with torch.inference_mode():
        return model.activate(model(compute_features(signal, rate)[None])[0]).numpy()


def run_session(session: Session, parts, rate=16000) -> FrameOutputs:
    outs = [session.accept(p, sample_rate=rate) for p in parts] + [session.finish()]
    for a, b in pairwise(outs):
        assert b.start_frame == a.start_frame + len(a)  # consecutive, no gaps
    return FrameOutputs.concat(outs)


@pytest.mark.parametrize("cell", [*CELLS, "gru-running"])  # and a GRU with the running-mean normalisation
@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 5000),
    sizes=st.lists(st.one_of(st.integers(1, 3), st.integers(4, 700), st.integers(10000, 50000)),
                   min_size=1, max_size=5),
    delay=st.sampled_from([0, 3]),
)
def test_session_equals_offline_forward_for_any_chunking(cell, n, sizes, delay):
    model = MODELS[cell, delay]
    signal = noisy_tone(0.4, seed=2)[:n]
    streamed = run_session(Session(model), chunk(signal, sizes))
    expected = offline(model, signal)
    assert streamed.values.shape == expected.shape
    assert np.abs(streamed.values - expected).max() < 1e-5
    assert streamed.start_frame == 0


def test_running_normalisation_forgets_the_input_level_within_a_few_time_constants():
    """Gain scales every mel energy alike, a constant shift in log-mel: the running mean absorbs it,
    so once it has settled a "running" model answers a quiet copy as it answers the loud one; a
    "global" model does not."""
    signal = noisy_tone(1.5, seed=4)
    for norm, settles in (("running", True), ("global", False)):
        model = make_model("uni", hidden=8, normalization=norm)  # running mean time constant 0.1 s
        loud, quiet = offline(model, signal), offline(model, signal * 0.05)  # -26 dB
        late = slice(100, None)  # after 1 s, ten time constants (the GRU's memory of the start fades too)
        assert (np.abs(loud[late] - quiet[late]).max() < 1e-3) == settles
        assert np.abs(loud[:3] - quiet[:3]).max() > 1e-3  # at first both hear the level


def test_session_equals_offline_at_44k_stereo():
    model = MODELS["gru", 3]
    signal = noisy_tone(0.5, rate=44100, channels=2)
    streamed = run_session(Session(model), chunk(signal, [441, 1, 3000]), rate=44100)
    assert np.abs(streamed.values - offline(model, signal, 44100)).max() < 1e-5


def test_output_delay_holds_back_exactly_k_frames_until_finish():
    model = MODELS["gru", 3]
    session = Session(model)
    out = session.accept(noisy_tone(0.1), sample_rate=16000)  # 10 frames of input
    assert len(out) == 10 - 3
    assert len(session.finish()) == 3


def test_frame_times_are_frame_index_times_10ms():
    out = run_session(Session(MODELS["gru", 0]), [noisy_tone(0.05)])
    assert np.allclose(out.times, np.arange(5) * 0.01)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("kind", ["uni", "bi"])
def test_padded_batch_equals_one_by_one(kind, cell):
    model = make_model(kind, delay=2 if kind == "uni" else 0, hidden=8, cell=cell)
    feats = [compute_features(noisy_tone(s, seed=i)) for i, s in enumerate((0.3, 0.12, 0.25))]
    lengths = torch.tensor([f.shape[0] for f in feats])
    batch = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True, padding_value=7.0)
    with torch.inference_mode():
        batched = model(batch, lengths)
        for i, f in enumerate(feats):
            alone = model(f[None])[0]
            assert torch.allclose(batched[i, : lengths[i]], alone, atol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_interleaved_sessions_on_one_model_do_not_disturb_each_other(cell):
    model = MODELS[cell, 3]
    a_sig, b_sig = noisy_tone(0.3, seed=5), noisy_tone(0.3, seed=6)
    a, b = Session(model), Session(model)
    a_out, b_out = [], []
    for pa, pb in zip(chunk(a_sig, [100]), chunk(b_sig, [100]), strict=True):
        a_out.append(a.accept(pa, sample_rate=16000))
        b_out.append(b.accept(pb, sample_rate=16000))
    a_out.append(a.finish())
    b_out.append(b.finish())
    assert np.abs(FrameOutputs.concat(a_out).values - offline(model, a_sig)).max() < 1e-5
    assert np.abs(FrameOutputs.concat(b_out).values - offline(model, b_sig)).max() < 1e-5


def test_finish_starts_a_new_stream_and_reset_drops_the_current_one():
    model, sig = MODELS["gru", 0], noisy_tone(0.2, seed=9)
    session = Session(model)
    first = run_session(session, [sig])
    second = run_session(session, [sig])
    assert np.array_equal(first.values, second.values) and second.start_frame == 0
    session.accept(noisy_tone(0.3, seed=1), sample_rate=16000)
    session.reset()
    assert np.abs(run_session(session, [sig]).values - first.values).max() < 1e-6


def test_finish_without_audio_returns_no_frames():
    assert len(Session(MODELS["gru", 3]).finish()) == 0


def test_streaming_session_over_bidirectional_model_fails_at_construction(bi_model):
    with pytest.raises(ValueError, match="BufferedProcessor"):
        Session(bi_model)


def test_buffered_processor_returns_nothing_until_the_utterance_ends(bi_model):
    signal = noisy_tone(0.6)
    proc = BufferedProcessor(bi_model)
    for part in chunk(signal, [320]):
        assert len(proc.accept(part, sample_rate=16000)) == 0
    out = proc.finish()
    assert out.start_frame == 0
    assert np.abs(out.values - offline(bi_model, signal)).max() < 1e-5
    assert proc.buffered_frames == 0


def test_buffered_processors_finished_together_give_each_its_own_outputs_in_one_batch(bi_model):
    signals = [noisy_tone(seconds) for seconds in (0.6, 0.13, 1.7)]
    procs = [BufferedProcessor(bi_model) for _ in range(4)]  # the last one heard nothing
    for proc, signal in zip(procs, signals, strict=False):
        for part in chunk(signal, [320]):
            proc.accept(part, sample_rate=16000)
    calls = []
    hook = bi_model.register_forward_hook(lambda module, args, out: calls.append(args[0].shape))
    try:
        outs = finish_together(procs)
    finally:
        hook.remove()
    assert len(calls) == 1 and calls[0][0] == 3  # one model call, the empty utterance left out of the batch
    for out, signal in zip(outs, signals, strict=False):
        assert out.start_frame == 0
        np.testing.assert_allclose(out.values, offline(bi_model, signal), atol=1e-5)  # padding changes nothing
    assert len(outs[3]) == 0 and outs[3].values.shape[1] == bi_model.config.n_outputs
    assert all(p.buffered_frames == 0 for p in procs) and finish_together([]) == []
    with pytest.raises(ValueError, match="processors of one model"):
        finish_together([BufferedProcessor(bi_model), BufferedProcessor(make_model("bi"))])


def test_session_rejects_bad_chunks_without_losing_state(uni_model):
    session = Session(uni_model)
    signal = noisy_tone(0.3)
    first = session.accept(signal[:1600], sample_rate=16000)
    with pytest.raises(ValueError, match="NaN"):
        session.accept(np.full(100, np.nan, np.float32), sample_rate=16000)
    rest = [session.accept(signal[1600:], sample_rate=16000), session.finish()]
    assert np.abs(FrameOutputs.concat([first, *rest]).values - offline(uni_model, signal)).max() < 1e-5
