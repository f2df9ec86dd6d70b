"""Feature-level augmentation of training batches: cheap changes to cached log-mel frames.

Two kinds, both off by default (``TrainConfig.freq_shift`` and ``TrainConfig.masks``):

* **mel shift**: each clip's bins move up or down by up to ``freq_shift`` bins (the edge bin is
  repeated into the gap). Moving the spectral envelope along the mel axis stands in for speakers
  with shorter or longer vocal tracts (a rough vocal-tract-length perturbation), which the TTS
  voices of a small corpus cover only thinly.
* **masks** (SpecAugment): ``masks`` frequency bands of 0-:data:`FREQ_MASK_BINS` bins and ``masks`` time
  spans of 0-:data:`TIME_MASK_FRAMES` frames per clip are set to the training mean, which
  normalises to zero. The time masks are short enough that no spoken digit disappears.

Dimension legend: B batch, T frames, F mel bins.
"""

from __future__ import annotations

import torch

FREQ_MASK_BINS = 4
TIME_MASK_FRAMES = 5


def shift_bins(frames: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """``frames (B, T, F)`` with clip b's bins moved up by ``shifts[b]`` (down when negative), edges repeated."""
    n_bins = frames.shape[-1]
    source = (torch.arange(n_bins)[None, :] - shifts[:, None]).clamp(0, n_bins - 1)  # (B, F): bin read
    return torch.gather(frames, 2, source[:, None, :].expand(-1, frames.shape[1], -1))


def _spans(count: int, width: int, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` random spans of 0-``width`` inside ``[0, size)``: ``(starts, widths)``, ``(count,)`` each."""
    widths = torch.randint(0, width + 1, (count,), generator=generator)
    starts = (torch.rand(count, generator=generator) * (size - widths + 1)).long()
    return starts, widths


def augment(frames: torch.Tensor, mean: torch.Tensor, *, freq_shift: int, masks: int,
            generator: torch.Generator) -> torch.Tensor:
    """An augmented copy of raw log-mel ``frames (B, T, F)``; ``mean (F,)``: the model's feature mean."""
    out = frames
    batch, n_frames, n_bins = frames.shape
    if freq_shift:
        out = shift_bins(out, torch.randint(-freq_shift, freq_shift + 1, (batch,), generator=generator))
    if masks:
        out = out.clone() if out is frames else out
        for b in range(batch):
            for start, width in zip(*_spans(masks, FREQ_MASK_BINS, n_bins, generator), strict=True):
                out[b, :, start : start + width] = mean[start : start + width]
            for start, width in zip(*_spans(masks, TIME_MASK_FRAMES, n_frames, generator), strict=True):
                out[b, start : start + width] = mean
    return out
