"""The projector from encoder tokens to decoder embeddings: optional pixel shuffle, a 2-layer GELU MLP, and
optionally a soft look-up in the decoder's own word embeddings."""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

PROJECTORS = ('mlp', 'vocabulary')


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


def soft_vocabulary_lookup(queries: torch.Tensor, vocabulary: torch.Tensor,
                           log_inverse_temperature: torch.Tensor) -> torch.Tensor:
    """(B, N, D) queries, (V, D) word embeddings -> (B, N, D): softmax over cosine similarities (scaled by an
    inverse temperature, capped at 100 as in CLIP) of the word embeddings, computed in float32.

    Each image token is a convex mix of the decoder's own input embeddings, so a pretrained decoder reads it as
    words it knows ("red", "circle") from the first step instead of as an off-manifold vector it must learn to
    attend to. The vocabulary is read, not trained, through this path.
    """
    words = vocabulary.detach().float()  # (V, D)
    scale = log_inverse_temperature.float().exp().clamp(max=100.0)
    similarity = nn.functional.normalize(queries.float(), dim=-1) @ nn.functional.normalize(words, dim=-1).T
    return ((similarity * scale).softmax(-1) @ words).to(queries.dtype)  # (B, N, D)


class Projector(nn.Module):
    """(B, C, h, w) encoder grid -> (B, N, D) decoder embeddings, N = (h/s)(w/s).

    kind 'mlp': the MLP's output is the image token (LLaVA-1.5, nanoVLM). kind 'vocabulary': the MLP's output is a
    query into the decoder's word embeddings (`soft_vocabulary_lookup`), passed to `forward` as `vocabulary`.
    """

    def __init__(self, in_features: int, out_features: int, hidden_features: int, pixel_shuffle: int = 1,
                 kind: str = 'mlp') -> None:
        super().__init__()
        if kind not in PROJECTORS:
            raise ValueError(f'projector must be one of {PROJECTORS}, got {kind!r}')
        self.kind = kind
        self.pixel_shuffle = pixel_shuffle
        self.fc1 = nn.Linear(in_features * pixel_shuffle ** 2, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features)
        if kind == 'vocabulary':  # CLIP's initial temperature, 0.07
            self.log_inverse_temperature = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, grid: torch.Tensor, vocabulary: Optional[torch.Tensor] = None) -> torch.Tensor:
        tokens = pixel_shuffle_tokens(grid, self.pixel_shuffle)  # (B, N, C s^2)
        queries = self.fc2(self.act(self.fc1(tokens)))  # (B, N, D)
        if self.kind == 'mlp':
            return queries
        if vocabulary is None:
            raise ValueError("a 'vocabulary' projector needs the decoder's input embeddings (V, D)")
        return soft_vocabulary_lookup(queries, vocabulary, self.log_inverse_temperature)
