"""Feature configuration, stored inside every checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel filterbank settings. Times in samples at ``sample_rate``.

    Frame ``t`` describes the hop ``[t * hop, (t + 1) * hop)`` of the signal; its analysis window
    is the ``win_length`` samples that *end* at the end of that hop (causal framing), with zeros
    before the start of the stream. A signal of ``N`` samples gives ``ceil(N / hop)`` frames.
    """

    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int = 400  # 25 ms
    hop_length: int = 160  # 10 ms
    n_mels: int = 40
    f_min: float = 20.0
    f_max: float = 7600.0
    eps: float = 1e-6

    def __post_init__(self) -> None:
        if not 40 <= self.n_mels <= 80:
            raise ValueError(f"n_mels must be in [40, 80]; received {self.n_mels}")
        if not 0 < self.hop_length <= self.win_length <= self.n_fft:
            raise ValueError(
                "expected 0 < hop_length <= win_length <= n_fft; received "
                f"hop={self.hop_length}, win={self.win_length}, n_fft={self.n_fft}"
            )
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(
                f"expected 0 <= f_min < f_max <= {self.sample_rate / 2}; received {self.f_min}, {self.f_max}"
            )

    @property
    def frame_shift_s(self) -> float:
        """Seconds between frames (10 ms by default)."""
        return self.hop_length / self.sample_rate

    @property
    def context(self) -> int:
        """Samples of past context each frame needs beyond its own hop."""
        return self.win_length - self.hop_length

    def to_dict(self) -> dict:
        return asdict(self)
