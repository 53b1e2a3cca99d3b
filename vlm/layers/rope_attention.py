"""Multi-head self-attention with 2D RoPE applied to queries and keys in one fused complex multiply."""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .rope_2d import apply_rotary


class RopeAttention(nn.Module):
    """Self-attention for ViT blocks: fused qkv projection, RoPE on q and k, `F.scaled_dot_product_attention`.

    Drop-in for timm's `EvaAttention` inside `EvaBlock` (same `forward(x, rope, attn_mask, is_causal)`),
    with the rotation done once for q and k together by `apply_rotary` instead of per tensor.
    """

    def __init__(
            self,
            dim: int,
            num_heads: int = 8,
            qkv_bias: bool = True,
            qk_norm: bool = False,
            norm_layer: Optional[Callable[[int], nn.Module]] = None,
            attn_drop: float = 0.0,
            proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        if qk_norm and norm_layer is None:
            raise ValueError("qk_norm=True needs a norm_layer")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.q_norm = norm_layer(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = norm_layer(self.head_dim) if qk_norm else nn.Identity()
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(
            self,
            x: torch.Tensor,
            rope: Optional[torch.Tensor] = None,
            attn_mask: Optional[torch.Tensor] = None,
            is_causal: bool = False,
    ) -> torch.Tensor:
        """x: (B, N, C); rope: complex (..., N, head_dim/2) broadcastable to (B, heads, N, head_dim/2)."""
        B, N, C = x.shape
        qkv = self.qkv(x).view(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (3, B, h, N, d)
        qk, v = qkv[:2], qkv[2]
        if not isinstance(self.q_norm, nn.Identity):
            qk = torch.stack([self.q_norm(qk[0]), self.k_norm(qk[1])])
        if rope is not None:
            qk = apply_rotary(qk, rope)  # (2, B, h, N, d)
        q, k = qk.unbind(0)
        x = F.scaled_dot_product_attention(
            q, k, v,
            attn_mask=attn_mask,
            dropout_p=self.attn_drop if self.training else 0.0,
            is_causal=is_causal,
        )  # (B, h, N, d)
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))
