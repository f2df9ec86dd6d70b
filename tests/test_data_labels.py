"""Frame labels from clean speech: grid, thresholds, gap closing and island removal."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamseq.data.labels import (
    close_gaps,
    drop_short,
    frame_energy_db,
    frames_to_samples,
    num_frames,
    speech_labels,
)

SR = 16000


def bursts(spans_s: list[tuple[float, float]], total_s: float, amp: float = 0.5, seed: int = 0) -> np.ndarray:
    """440 Hz tone bursts over [start, end) seconds on a -80 dBFS noise floor."""
    rng = np.random.default_rng(seed)
    n = int(round(total_s * SR))
    x = 1e-4 * rng.standard_normal(n)
    t = np.arange(n) / SR
    for a, b in spans_s:
        i, j = int(round(a * SR)), int(round(b * SR))
        x[i:j] += amp * np.sin(2 * np.pi * 440 * t[i:j])
    return x.astype(np.float32)


def expected(spans_frames: list[tuple[int, int]], t: int) -> np.ndarray:
    out = np.zeros(t, dtype=np.uint8)
    for a, b in spans_frames:
        out[a:b] = 1
    return out


def test_known_regions_gap_closing_and_island_removal():
    x = bursts([(0.20, 0.60), (0.66, 1.00), (1.30, 1.70), (1.90, 1.92), (2.20, 2.25)], 2.5)
    labels = speech_labels(x, SR)
    assert labels.dtype == np.uint8 and labels.shape == (250,)
    # 60 ms gap closed; 300 ms gap kept; 20 ms blip dropped; 50 ms burst kept
    np.testing.assert_array_equal(labels, expected([(20, 100), (130, 170), (220, 225)], 250))


def test_gap_of_exactly_100ms_stays_open_and_99ms_closes():
    open_ = speech_labels(bursts([(0.1, 0.5), (0.6, 1.0)], 1.2))
    assert open_[50:60].sum() == 0 and open_[40:50].all() and open_[60:70].all()
    closed = speech_labels(bursts([(0.1, 0.5), (0.59, 1.0)], 1.2))
    assert closed[10:100].all()


def test_edge_gaps_are_not_closed():
    labels = speech_labels(bursts([(0.05, 0.5)], 0.6))
    assert labels[:5].sum() == 0 and labels[50:].sum() == 0


def test_relative_threshold_35db():
    x = bursts([(0.1, 0.5)], 2.0)
    t = np.arange(x.size) / SR
    quiet = (t >= 1.0) & (t < 1.4)
    x30, x40 = x.copy(), x.copy()
    x30[quiet] += 0.5 * 10 ** (-30 / 20) * np.sin(2 * np.pi * 300 * t[quiet])
    x40[quiet] += 0.5 * 10 ** (-40 / 20) * np.sin(2 * np.pi * 300 * t[quiet])
    assert speech_labels(x30)[100:140].all()
    assert speech_labels(x40)[100:140].sum() == 0


def test_absolute_floor_and_scale_invariance():
    x = bursts([(0.2, 0.8)], 1.0)
    np.testing.assert_array_equal(speech_labels(x), speech_labels(0.05 * x))
    assert speech_labels(x * 10 ** (-70 / 20)).sum() == 0  # peak frame below the -60 dB floor
    assert speech_labels(np.zeros(1000, dtype=np.float32)).sum() == 0


def test_partial_last_frame_is_measured_on_its_own_samples():
    x = np.zeros(1610, dtype=np.float32)
    x[1600:] = 0.5  # 10 loud samples in the 11th (partial) frame
    e = frame_energy_db(x)
    assert e.shape == (11,)
    assert e[-1] == pytest.approx(20 * np.log10(0.5), abs=1e-3)


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=0, max_value=5000))
def test_label_length_is_ceil_n_over_160(n):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.1
    labels = speech_labels(x)
    assert labels.shape == (math.ceil(n / 160),) == (num_frames(n),)
    assert frames_to_samples(labels, n).shape == (n,)


def test_morphology_helpers():
    m = np.array([1, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0], dtype=bool)
    np.testing.assert_array_equal(close_gaps(m, 3), [1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0])
    np.testing.assert_array_equal(drop_short(m, 2), [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0])


def test_bad_inputs_say_what_was_expected():
    with pytest.raises(ValueError, match="mono 1-D"):
        speech_labels(np.zeros((100, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="multiple of 100"):
        speech_labels(np.zeros(100, dtype=np.float32), sr=16050)
    with pytest.raises(ValueError, match="expected \\(2,\\)"):
        frames_to_samples(np.zeros(3), 320)


def test_an_audible_noise_floor_is_not_labelled_speech():
    """A recording with hiss 30 dB under the speech: the old rule (35 dB under the peak) took
    the hiss for speech; the noise-floor margin keeps only the burst."""
    rng = np.random.default_rng(0)
    x = 10 ** (-40 / 20) * rng.standard_normal(3 * 16000)  # hiss at -40 dBFS
    t = np.arange(16000) / 16000
    x[16000:32000] += 10 ** (-10 / 20) * np.sqrt(2) * np.sin(2 * np.pi * 300 * t)  # 1 s burst at -10 dBFS
    labels = speech_labels(x.astype(np.float32))
    assert labels[100:200].all() and not labels[:95].any() and not labels[205:].any()
    assert speech_labels(x.astype(np.float32), noise_margin_db=-100.0).mean() > 0.9  # without it: all hiss
