"""What every streaming object returns: outputs for a run of consecutive frames."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class FrameOutputs:
    """Outputs for consecutive frames ``start_frame .. start_frame + n - 1`` of a stream.

    ``values`` is ``(n, C)`` (speech probability in column 0 for VAD). Frame i covers
    ``[times[i], times[i] + frame_shift_s)`` seconds from the start of the stream.
    """

    start_frame: int
    values: np.ndarray
    frame_shift_s: float = 0.01

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def frames(self) -> np.ndarray:
        """Frame indices ``(n,)``."""
        return np.arange(self.start_frame, self.start_frame + len(self))

    @property
    def times(self) -> np.ndarray:
        """Start time of each frame in seconds ``(n,)``."""
        return self.frames * self.frame_shift_s

    @staticmethod
    def empty(start_frame: int, n_outputs: int, frame_shift_s: float = 0.01) -> FrameOutputs:
        return FrameOutputs(start_frame, np.zeros((0, n_outputs), np.float32), frame_shift_s)

    @staticmethod
    def concat(parts: list[FrameOutputs]) -> FrameOutputs:
        """Join consecutive outputs of one stream into one."""
        if not parts:
            raise ValueError("nothing to concatenate")
        return FrameOutputs(parts[0].start_frame, np.concatenate([p.values for p in parts]), parts[0].frame_shift_s)
