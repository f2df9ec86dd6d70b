"""The streaming frontend yields exactly the offline frames, whatever the chunking or rate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchaudio
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import chunk, noisy_tone
from streamseq.audio.resample import StreamingResampler, resample
from streamseq.features import FeatureConfig, StreamingFrontend, compute_features, frames_for, log_mel

chunk_sizes = st.lists(
    st.one_of(st.integers(1, 4), st.integers(5, 800), st.integers(20000, 100000)), min_size=1, max_size=6
)


def stream(frontend: StreamingFrontend, parts: list[np.ndarray], rate: int) -> torch.Tensor:
    return torch.cat([frontend.accept(p, sample_rate=rate) for p in parts] + [frontend.flush()])


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 9000), sizes=chunk_sizes, rate=st.sampled_from([8000, 16000, 22050, 44100, 48000]),
       stereo=st.booleans())
def test_streaming_frontend_equals_offline_for_any_chunking(n, sizes, rate, stereo):
    signal = noisy_tone(1.0, rate=rate, channels=stereo)[:n]
    offline = compute_features(signal, rate)
    streamed = stream(StreamingFrontend(), chunk(signal, sizes), rate)
    assert streamed.shape == offline.shape
    assert torch.allclose(streamed, offline, atol=1e-4, rtol=1e-5)


def test_frame_count_is_one_per_started_hop_at_16k():
    for n in (1, 159, 160, 161, 16000):
        assert compute_features(np.full(n, 0.1, np.float32)).shape == (frames_for(n, FeatureConfig()), 40)
        assert frames_for(n, FeatureConfig()) == -(-n // 160)


def test_offline_features_are_log_mel_of_the_signal():
    x = noisy_tone(0.5)
    assert torch.allclose(compute_features(x), log_mel(torch.from_numpy(x)), atol=1e-5)


@pytest.mark.parametrize("rate", [8000, 11025, 44100, 48000])
def test_resampler_matches_torchaudio_in_any_chunking(rate):
    x = torch.from_numpy(noisy_tone(0.7, rate=rate))
    reference = torchaudio.functional.resample(x, rate, 16000)
    assert torch.allclose(resample(x, rate, 16000), reference, atol=1e-5)
    s = StreamingResampler(rate, 16000)
    streamed = torch.cat([s.accept(p) for p in torch.split(x, 37)] + [s.flush()])
    assert torch.allclose(streamed, reference, atol=1e-5)


def test_resampling_removes_content_above_the_new_nyquist():
    t = np.arange(48000) / 48000
    alias = np.sin(2 * np.pi * 12000 * t).astype(np.float32)  # above 8 kHz: must vanish
    out = resample(torch.from_numpy(alias), 48000, 16000)
    assert out[200:-200].abs().max() < 0.01


def test_multichannel_input_is_downmixed_by_averaging():
    x = noisy_tone(0.3)
    stereo = np.stack([x, -x + 2 * x], axis=1)  # mean is x
    assert torch.allclose(compute_features(stereo), compute_features(x), atol=1e-5)


@pytest.mark.parametrize(
    "samples, rate, message",
    [
        (np.zeros(0, np.float32), 16000, "empty"),
        (np.array([0.1, np.nan], np.float32), 16000, "NaN"),
        (np.array([0.1, np.inf], np.float32), 16000, "NaN or infinite"),
        (np.zeros((10, 2, 2), np.float32), 16000, "received shape (10, 2, 2)"),
        (np.zeros(10, np.complex64), 16000, "dtype complex64"),
        (np.zeros(10, bool), 16000, "dtype bool"),
        (np.zeros((2, 16000), np.float32), 16000, "Pass channels_first=True for (channels, samples)"),
        (np.zeros(10, np.float32), 0, "from 4000 to 384000; received 0"),
        (np.zeros(10, np.float32), -16000, "from 4000 to 384000; received -16000"),
        (np.zeros(10, np.float32), 16000.5, "from 4000 to 384000; received 16000.5"),
    ],
)
def test_bad_input_gives_a_value_error_saying_what_was_expected(samples, rate, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        StreamingFrontend().accept(samples, sample_rate=rate)


def test_int16_pcm_is_scaled_like_float():
    x = noisy_tone(0.2)
    pcm = np.round(x * 32767).astype(np.int16)
    assert torch.allclose(compute_features(pcm), compute_features(pcm / 32768.0), atol=1e-4)


def test_changing_rate_mid_stream_is_refused_until_reset():
    f = StreamingFrontend()
    f.accept(np.zeros(100, np.float32), sample_rate=16000)
    with pytest.raises(ValueError, match="started at 16000 Hz"):
        f.accept(np.zeros(100, np.float32), sample_rate=8000)
    f.reset()
    f.accept(np.zeros(100, np.float32), sample_rate=8000)
