"""Multi-head self-attention with 2D RoPE applied to queries and keys in one fused complex multiply."""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .rope_2d import apply_rotary


class RopeAttention(nn.Module):
    """Self-attention for ViT blocks: fused qkv projection (with a bias for q, k and v), RoPE on q and k,
    `F.scaled_dot_product_attention`.

    Drop-in for timm's `EvaAttention` inside `EvaBlock` (same `forward(x, rope, attn_mask, is_causal)`), with the
    rotation done once for q and k together by `apply_rotary` (identity rows for the prefix tokens, no slicing)
    instead of per tensor. Kept over timm's attention, measured on the 2-core CI machine (torch 2.14.1, timm 1.0.31,
    2026-12-06):
    - forward + backward of one ViT-S block's attention with mixed RoPE on (16, 197, 384) (`python -m
      benchmarks.speed.encoder_speed --components`): 112 ms, against 119 ms for timm's `EvaAttention` (1.06x, and it
      has no key bias, so it cannot hold a converted ViT's) and 117 ms for `AttentionRope` (1.05x);
    - a whole ViT-S/16 training step (`python -m benchmarks.speed.encoder_speed`): timm's own Eva with mixed RoPE
      (`vit_small_patch16_rope_mixed_224`: `AttentionRope`) and `F.rms_norm` runs at 0.923 of timm's plain ViT
      (0.913 in a second run), this encoder at 0.947 (0.945). The rule (issue 26): use timm's attention and torch's
      norm if that model trains within 0.95 of the plain ViT; it does not, and it is the slower of the two in
      both runs.
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
            num_prefix_tokens: int = 1,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        if qk_norm and norm_layer is None:
            raise ValueError("qk_norm=True needs a norm_layer")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.num_prefix_tokens = num_prefix_tokens
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
        """x: (B, N, C), N = prefix tokens + patches; rope: complex (..., patches, head_dim/2), broadcastable to
        (B, heads, patches, head_dim/2) (`RotaryEmbedding2d.get_embed`, or its rows kept by patch dropout)."""
        B, N, C = x.shape
        qkv = self.qkv(x).view(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (3, B, h, N, d)
        qk, v = qkv[:2], qkv[2]
        if not isinstance(self.q_norm, nn.Identity):
            qk = torch.stack([self.q_norm(qk[0]), self.k_norm(qk[1])])
        if rope is not None:
            if self.num_prefix_tokens:  # identity rows: the class / register tokens are not rotated
                prefix = rope.new_ones(*rope.shape[:-2], self.num_prefix_tokens, rope.shape[-1])
                rope = torch.cat([prefix, rope], dim=-2)  # (..., N, d/2)
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
