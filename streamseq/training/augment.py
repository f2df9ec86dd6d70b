"""SpecAugment on training batches: bands of mel bins and spans of frames set to the feature mean.

Park et al. (2019), without time warping. Masks are drawn independently for every clip of a batch
(``torchaudio.functional.mask_along_axis_iid``, from torch's global generator, which the trainer
saves with its resume state). Masked values are the training set's mean per mel bin, which the
model's normalisation maps to zero. Dimension legend: B batch, T frames, F mel bins.
"""

from __future__ import annotations

import torch
import torchaudio.functional as AF


def spec_augment(frames: torch.Tensor, mean: torch.Tensor, *, freq_masks: int, freq_mask_bins: int,
                 time_masks: int, time_mask_frames: int) -> torch.Tensor:
    """``frames (B, T, F)`` with ``freq_masks`` bands of 0 to ``freq_mask_bins`` bins and ``time_masks``
    spans of 0 to ``time_mask_frames`` frames per clip set to ``mean (F,)``; a new tensor."""
    if frames.dim() != 3 or mean.shape != frames.shape[-1:]:
        raise ValueError(f"expected frames (B, T, F) and mean (F,); received {tuple(frames.shape)} and "
                         f"{tuple(mean.shape)}")
    keep = torch.ones_like(frames)
    for _ in range(freq_masks):
        keep = AF.mask_along_axis_iid(keep, freq_mask_bins, 0.0, axis=2)
    for _ in range(time_masks):
        keep = AF.mask_along_axis_iid(keep, time_mask_frames, 0.0, axis=1)
    return torch.where(keep > 0, frames, mean)
