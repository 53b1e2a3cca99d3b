"""Dense features: an encoder's token grids as (B, C, H/p, W/p) maps, for any input size."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch
from torch import nn


@dataclass
class DenseFeatures:
    """Output of `dense_features`.

    last: (B, C, H/p, W/p), the final block's grid after the final norm.
    intermediates: one (B, C, H/p, W/p) grid per requested block index, in the order asked.
    prefix_tokens: (B, num_prefix_tokens, C), the class/register tokens of the final block (normed), or
        None for an encoder without prefix tokens.
    """

    last: torch.Tensor
    intermediates: List[torch.Tensor]
    prefix_tokens: Optional[torch.Tensor]


def dense_features(
        encoder: nn.Module,
        images: torch.Tensor,
        indices: Sequence[int] = (),
        norm: bool = False,
) -> DenseFeatures:
    """Run `encoder` on `images` (B, 3, H, W) through timm's `forward_intermediates`.

    indices: block indices (negative counts from the end) whose grids to return besides the last one.
    norm: apply the final norm to the intermediate grids too (the last grid is always normed).
    Works for any timm ViT that has `forward_intermediates` (the vlm encoders, timm's ViT, Eva, ...).
    """
    depth = len(encoder.blocks)
    wanted = sorted({i % depth for i in indices} | {depth - 1})
    has_prefix = getattr(encoder, 'num_prefix_tokens', 0) > 0
    outputs = encoder.forward_intermediates(
        images,
        indices=wanted,
        norm=False,
        output_fmt='NCHW',
        intermediates_only=True,
        return_prefix_tokens=has_prefix,
    )  # per wanted block, before the final norm: (B, C, h, w), or ((B, C, h, w), (B, npt, C)) with prefix
    by_index = dict(zip(wanted, outputs if has_prefix else [(grid, None) for grid in outputs]))
    last, prefix = by_index[depth - 1]
    intermediates = [by_index[i % depth][0] for i in indices]
    if norm:
        intermediates = [_norm_grid(encoder.norm, grid) for grid in intermediates]
    return DenseFeatures(
        last=_norm_grid(encoder.norm, last),
        intermediates=intermediates,
        prefix_tokens=encoder.norm(prefix) if has_prefix else None,
    )


def _norm_grid(norm: nn.Module, grid: torch.Tensor) -> torch.Tensor:
    """Apply a per-token norm to a (B, C, h, w) grid."""
    return norm(grid.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # (B, C, h, w)
