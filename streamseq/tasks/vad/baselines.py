"""Frame scorers to compare against: an energy detector and, when installed, WebRTC, Silero and TEN VAD.

Every scorer maps a mono 16 kHz clip ``(N,)`` to one speech score per 10 ms frame
``(ceil(N / 160),)``, on the same frame grid as streamseq's models, so the same metrics apply.
The peers are optional (``pip install streamseq[peers]``); :func:`available_scorers` lists
what is installed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from streamseq.features import FeatureConfig

_GRID = FeatureConfig()  # the models' frame grid: 10 ms hops at 16 kHz
SAMPLE_RATE, HOP = _GRID.sample_rate, _GRID.hop_length
Scorer = Callable[[np.ndarray], np.ndarray]


def _frame_count(n: int) -> int:
    return -(-n // HOP)


def energy_scores(audio: np.ndarray) -> np.ndarray:
    """Frame energy as a pseudo-probability: sigmoid((dBFS + 45) / 3).

    A fixed absolute threshold (-45 dBFS at 0.5): the classic energy VAD, no adaptation.
    """
    frames = np.pad(audio, (0, _frame_count(audio.size) * HOP - audio.size)).reshape(-1, HOP)
    db = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    return 1.0 / (1.0 + np.exp(-(db + 45.0) / 3.0))


def webrtc_scorer() -> Scorer:
    """WebRTC VAD on 10 ms frames; the score is the fraction of its modes 0-3 that say speech.

    Its four aggressiveness modes are nested operating points; averaging them gives a graded
    score for ROC-AUC, and threshold 0.5 means "modes 0 and 1 (at least) call it speech".
    """
    import webrtcvad

    vads = [webrtcvad.Vad(mode) for mode in range(4)]

    def score(audio: np.ndarray) -> np.ndarray:
        pcm = np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)
        pcm = np.pad(pcm, (0, _frame_count(pcm.size) * HOP - pcm.size))
        out = np.empty(pcm.size // HOP)
        for i in range(out.size):
            frame = pcm[i * HOP : (i + 1) * HOP].tobytes()
            out[i] = sum(v.is_speech(frame, SAMPLE_RATE) for v in vads) / 4.0
        return out

    return score


def silero_scorer() -> Scorer:
    """Silero VAD (its ONNX model, shipped in the ``silero-vad`` package), 512-sample chunks.

    Each 10 ms frame takes the probability of the 32 ms chunk holding its centre.
    """
    import torch
    from silero_vad import load_silero_vad

    model = load_silero_vad(onnx=True)

    def score(audio: np.ndarray) -> np.ndarray:
        model.reset_states()
        chunk = 512
        padded = np.pad(audio, (0, -audio.size % chunk)).astype(np.float32)
        probs = np.array([float(model(torch.from_numpy(padded[i : i + chunk]), SAMPLE_RATE))
                          for i in range(0, padded.size, chunk)])
        centres = np.arange(_frame_count(audio.size)) * HOP + HOP // 2
        return probs[np.minimum(centres // chunk, probs.size - 1)]  # the last frame may end past the audio

    return score


def ten_vad_scorer() -> Scorer:
    """TEN VAD (PyPI ``ten-vad``; its library needs Debian's ``libc++1``), 256-sample (16 ms) hops.

    Each 10 ms frame takes the probability of the hop holding its centre.
    """
    from ten_vad import TenVad

    hop = 256

    def score(audio: np.ndarray) -> np.ndarray:
        vad = TenVad(hop, 0.5)  # a fresh detector per clip: no state carried between clips
        pcm = np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)
        pcm = np.pad(pcm, (0, -pcm.size % hop))
        probs = np.array([vad.process(pcm[i : i + hop])[0] for i in range(0, pcm.size, hop)])
        centres = np.arange(_frame_count(audio.size)) * HOP + HOP // 2
        return probs[np.minimum(centres // hop, probs.size - 1)]

    return score


def available_scorers() -> dict[str, Scorer]:
    """Energy always; ``webrtc``, ``silero`` and ``ten`` when their packages load."""
    scorers: dict[str, Scorer] = {"energy": energy_scores}
    for name, factory in (("webrtc", webrtc_scorer), ("silero", silero_scorer), ("ten", ten_vad_scorer)):
        try:
            scorers[name] = factory()
        except (ImportError, OSError):  # OSError: a peer's native library is missing (libc++1 for TEN)
            pass
    return scorers
