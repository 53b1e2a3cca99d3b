"""The projector from encoder tokens to decoder embeddings: optional pixel shuffle, then a 2-layer GELU MLP."""
from __future__ import annotations

import torch
from torch import nn


def pixel_shuffle_tokens(grid: torch.Tensor, factor: int) -> torch.Tensor:
    """(B, C, h, w) grid -> (B, (h/s)(w/s), C s^2) tokens, each from one s x s block of neighbours, row-major.

    factor s = 1 flattens the grid to (B, h w, C).
    """
    batch, channels, height, width = grid.shape
    if height % factor or width % factor:
        raise ValueError(f'token grid {height}x{width} is not divisible by pixel_shuffle {factor}')
    if factor == 1:
        return grid.flatten(2).transpose(1, 2)  # (B, h w, C)
    blocks = nn.functional.pixel_unshuffle(grid, factor)  # (B, C s^2, h/s, w/s)
    return blocks.flatten(2).transpose(1, 2)  # (B, (h/s)(w/s), C s^2)


class Projector(nn.Module):
    """(B, C, h, w) encoder grid -> (B, N, D) decoder embeddings, N = (h/s)(w/s)."""

    def __init__(self, in_features: int, out_features: int, hidden_features: int, pixel_shuffle: int = 1) -> None:
        super().__init__()
        self.pixel_shuffle = pixel_shuffle
        self.fc1 = nn.Linear(in_features * pixel_shuffle ** 2, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        tokens = pixel_shuffle_tokens(grid, self.pixel_shuffle)  # (B, N, C s^2)
        return self.fc2(self.act(self.fc1(tokens)))  # (B, N, D)
