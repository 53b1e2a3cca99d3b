"""Simple feature pyramid (ViTDet, Li et al. 2022): multi-scale maps from a plain ViT's single last grid."""
from __future__ import annotations

import math
from typing import List, Sequence

import torch
import torch.nn.functional as F
from timm.layers import LayerNorm2d
from torch import nn


def _rescale(channels: int, factor: float) -> tuple[nn.Module, int]:
    """The ViTDet block that rescales a map by `factor` (a power of 2), and its output channels.

    factor > 1: a ConvTranspose2d(k=2, s=2) per doubling, each halving the channels, with LayerNorm2d + GELU
    between consecutive ones. factor == 1: identity. factor < 1: max-pooling by 1 / factor.
    """
    steps = round(math.log2(factor))
    if steps < 0:
        return nn.MaxPool2d(kernel_size=2 ** -steps, stride=2 ** -steps), channels
    layers: List[nn.Module] = []
    for i in range(steps):
        if i > 0:
            layers += [LayerNorm2d(channels), nn.GELU()]
        layers.append(nn.ConvTranspose2d(channels, max(channels // 2, 1), kernel_size=2, stride=2))
        channels = max(channels // 2, 1)
    return nn.Sequential(*layers), channels


class SimpleFeaturePyramid(nn.Module):
    """One (B, C, H/p, W/p) map -> one (B, out_channels, H/s, W/s) map per stride s.

    in_channels: C, the encoder's width. input_stride: p, the encoder's patch size. strides: the output
    strides, each p * 2^k (k may be negative: upsampled by transposed convs, or positive: max-pooled).
    Each level is rescaled, then projected by a 1x1 conv + LayerNorm2d and a 3x3 conv + LayerNorm2d.
    extra_levels: further levels after the last one, each a stride-2 subsampling (max-pool, kernel 1) of the
    previous output, as torchvision's `LastLevelMaxPool` (Mask R-CNN's 'pool' level, FCOS/RetinaNet P6, P7).
    `out_strides` lists the strides of all outputs, in order.
    """

    def __init__(self, in_channels: int, out_channels: int = 256, input_stride: int = 16,
                 strides: Sequence[int] = (4, 8, 16, 32), extra_levels: int = 0) -> None:
        super().__init__()
        for stride in strides:
            ratio = math.log2(stride / input_stride)
            if ratio != round(ratio):
                raise ValueError(f"pyramid stride {stride} is not input_stride {input_stride} times a power of 2")
        if list(strides) != sorted(set(strides)):
            raise ValueError(f"pyramid strides must be increasing, got {list(strides)}")
        self.out_channels = out_channels
        self.extra_levels = extra_levels
        self.out_strides = [*strides, *(strides[-1] * 2 ** (i + 1) for i in range(extra_levels))]
        self.levels = nn.ModuleList()
        for stride in strides:
            rescale, channels = _rescale(in_channels, input_stride / stride)
            self.levels.append(nn.Sequential(
                rescale,
                nn.Conv2d(channels, out_channels, kernel_size=1, bias=False),
                LayerNorm2d(out_channels),
                nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
                LayerNorm2d(out_channels),
            ))

    def forward(self, grid: torch.Tensor) -> List[torch.Tensor]:
        """grid (B, C, H/p, W/p) -> [(B, out_channels, H/s, W/s) for s in out_strides]."""
        outputs = [level(grid) for level in self.levels]
        for _ in range(self.extra_levels):
            outputs.append(F.max_pool2d(outputs[-1], kernel_size=1, stride=2))  # (B, out, ceil(h/2), ceil(w/2))
        return outputs
