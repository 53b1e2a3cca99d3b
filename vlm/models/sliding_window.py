"""Sliding-window inference: logits for an image of any size from a model run on fixed-size windows."""
from __future__ import annotations

from typing import Callable, List

import torch
import torch.nn.functional as F


def window_starts(size: int, window: int, stride: int) -> List[int]:
    """Start offsets of the windows along one side: every `stride` pixels, the last one moved back so that it
    ends at `size` (mmsegmentation's layout). A side shorter than the window gets one window at 0."""
    if window <= 0 or stride <= 0:
        raise ValueError(f"window and stride must be positive, got window={window}, stride={stride}")
    if stride > window:
        raise ValueError(f"stride {stride} > window {window} would leave pixels between windows uncovered")
    count = max(size - window + stride - 1, 0) // stride + 1
    return sorted({max(min(i * stride, size - window), 0) for i in range(count)})


def slide_inference(
        forward_fn: Callable[[torch.Tensor], torch.Tensor],
        images: torch.Tensor,
        num_classes: int,
        window: int,
        stride: int,
) -> torch.Tensor:
    """images (B, 3, H, W) -> logits (B, K, H, W), K = num_classes, averaged over overlapping windows.

    forward_fn maps (B, 3, window, window) to (B, K, window, window). Windows of `window` x `window` pixels are
    taken every `stride` pixels, the last row and column of windows aligned with the bottom and right edges, so
    every pixel is covered at least once whatever H and W. A side shorter than the window is zero-padded
    (bottom / right) up to the window for the forward pass, and the padding's logits are dropped.
    """
    batch, _, height, width = images.shape
    logits = images.new_zeros((batch, num_classes, height, width), dtype=torch.float32)  # (B, K, H, W)
    counts = images.new_zeros((1, 1, height, width), dtype=torch.float32)  # (1, 1, H, W)
    for top in window_starts(height, window, stride):
        for left in window_starts(width, window, stride):
            crop = images[:, :, top:top + window, left:left + window]  # (B, 3, h, w), h, w <= window
            h, w = crop.shape[-2:]
            padded = F.pad(crop, (0, window - w, 0, window - h))  # (B, 3, window, window)
            out = forward_fn(padded)  # (B, K, window, window)
            if out.shape[-2:] != (window, window) or out.shape[:2] != (batch, num_classes):
                raise ValueError(f"forward_fn returned {tuple(out.shape)} for a window of "
                                 f"{(batch, 3, window, window)}; expected {(batch, num_classes, window, window)}")
            logits[:, :, top:top + h, left:left + w] += out[:, :, :h, :w].float()
            counts[:, :, top:top + h, left:left + w] += 1
    return logits / counts
