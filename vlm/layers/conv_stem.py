"""Convolutional stem (Xiao et al. 2021, "Early Convolutions Help Transformers See Better"): a stack of 3x3
stride-2 convolutions in place of the single patchify convolution. Same output grid, far easier optimisation
for ViTs trained from scratch on little data (less lr sensitivity, faster convergence)."""
from __future__ import annotations

import math
from typing import List, Optional

import torch
from torch import nn


def _conv_bn_relu(in_channels: int, out_channels: int, stride: int) -> List[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


class ConvStem(nn.Module):
    """(B, C_in, H, W) -> (B, embed_dim, H / patch, W / patch): log2(patch) stages, each a 3x3 stride-2 conv +
    BatchNorm + ReLU followed by `depth - 1` stride-1 3x3 conv + BatchNorm + ReLU, then a 1x1 conv to embed_dim.

    Stage widths double from `width` (default embed_dim / patch: embed_dim / 2^k ... embed_dim / 2 for k
    stages; at least 8), capped at embed_dim. Used as the `proj` of timm's PatchEmbed, so grid sizes,
    dynamic image size and `feat_ratio` are unchanged. A wider, deeper stem (e.g. width 32, depth 2 for a
    128-wide ViT/8) learns image-level labels from scratch several times faster on small data.
    """

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int, width: Optional[int] = None,
                 depth: int = 1) -> None:
        super().__init__()
        steps = int(math.log2(patch_size))
        if 2 ** steps != patch_size or steps < 1:
            raise ValueError(f'a conv stem needs a power-of-2 patch size, got {patch_size}')
        if depth < 1:
            raise ValueError(f'a conv stem needs at least 1 conv per stage, got stem depth {depth}')
        first = width if width is not None else embed_dim // patch_size
        layers: List[nn.Module] = []
        channels = in_chans
        for i in range(steps):
            stage_width = max(min(first * 2 ** i, embed_dim), 8)
            layers += _conv_bn_relu(channels, stage_width, stride=2)
            for _ in range(depth - 1):
                layers += _conv_bn_relu(stage_width, stage_width, stride=1)
            channels = stage_width
        layers.append(nn.Conv2d(channels, embed_dim, 1))
        self.stem = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stem(x)  # (B, embed_dim, H / patch, W / patch)
