"""Convolutional stem (Xiao et al. 2021, "Early Convolutions Help Transformers See Better"): a stack of 3x3
stride-2 convolutions in place of the single patchify convolution. Same output grid, far easier optimisation
for ViTs trained from scratch on little data (less lr sensitivity, faster convergence)."""
from __future__ import annotations

import math

import torch
from torch import nn


class ConvStem(nn.Module):
    """(B, C_in, H, W) -> (B, embed_dim, H / patch, W / patch): log2(patch) blocks of 3x3 stride-2 conv +
    BatchNorm + ReLU, doubling the width from embed_dim / 2^(k-1) ... up to embed_dim / 2, then a 1x1 conv to
    embed_dim. Used as the `proj` of timm's PatchEmbed, so grid sizes, dynamic image size and `feat_ratio`
    are unchanged."""

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int) -> None:
        super().__init__()
        steps = int(math.log2(patch_size))
        if 2 ** steps != patch_size or steps < 1:
            raise ValueError(f'a conv stem needs a power-of-2 patch size, got {patch_size}')
        layers = []
        channels = in_chans
        for i in range(steps):
            width = max(embed_dim // 2 ** (steps - i), 8)
            layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True)]
            channels = width
        layers.append(nn.Conv2d(channels, embed_dim, 1))
        self.stem = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stem(x)  # (B, embed_dim, H / patch, W / patch)
