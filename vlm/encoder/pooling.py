"""Image-level features of a timm ViT for a classifier head: its class token, its mean patch token, or both
concatenated (DINOv2's linear evaluation). Works for any timm model with `forward_features`, `num_prefix_tokens`
and `fc_norm` (timm's VisionTransformer and Eva, the vlm RoPE/RMSNorm ViT)."""
from __future__ import annotations

from typing import Optional

import torch
from timm.layers import global_pool_nlc
from torch import nn

POOLS = ('token', 'avg', 'token+avg')


def check_pool(encoder: nn.Module, pool: Optional[str]) -> None:
    """Refuse a pool the encoder cannot give, in one message (None: the encoder's own `global_pool`)."""
    if pool is None:
        return
    if pool not in POOLS:
        raise ValueError(f'pool must be one of {POOLS} or None (the encoder\'s own global_pool), got {pool!r}')
    if 'token' in pool and getattr(encoder, 'num_prefix_tokens', 0) < 1:
        raise ValueError(f"pool {pool!r} reads the class token, but {type(encoder).__name__} has none "
                         f"(class_token=False): use pool 'avg'")


def pooled_width(encoder: nn.Module, pool: Optional[str]) -> int:
    """Width of `pool_features`: the encoder's num_features, twice that for 'token+avg'."""
    return encoder.num_features * (2 if pool == 'token+avg' else 1)


def pool_features(encoder: nn.Module, tokens: torch.Tensor, pool: Optional[str]) -> torch.Tensor:
    """tokens (B, P + N, D) of `encoder.forward_features` -> (B, D), or (B, 2D) for 'token+avg' (class token, then
    the mean of the N patch tokens; the P prefix tokens are the class and register tokens), each through the
    encoder's `fc_norm`; each pooled by timm's `global_pool_nlc`). None: the encoder's own
    `forward_head(pre_logits=True)`."""
    if pool is None:
        return encoder.forward_head(tokens, pre_logits=True)
    parts = [global_pool_nlc(tokens, kind, encoder.num_prefix_tokens) for kind in pool.split('+')]  # (B, D) each
    return torch.cat([encoder.fc_norm(part) for part in parts], dim=-1)
