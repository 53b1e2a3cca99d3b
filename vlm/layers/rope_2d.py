"""2D rotary position embedding (RoPE) over a ViT's patch grid, as complex rotation tables.

A token at grid row r, column c has its query and key rotated, channel pair by channel pair, by the angle
theta(r, c) = r * f_y + c * f_x. Because theta is linear in position, the rotated dot product q(p1) . k(p2)
depends only on p1 - p2. Two frequency choices (Heo et al., "Rotary Position Embedding for Vision
Transformer", 2024):

- ``axial``: fixed frequencies, the first half of the channel pairs turn with the row, the second half with
  the column (f_y = [bands, 0], f_x = [0, bands]).
- ``mixed``: learnable frequencies per block and head (``freqs`` parameter), initialised as axial bands in
  a random direction per head, so a pair can turn with any mix of row and column.

Tables are complex (e^{i theta}), one row per patch, in the layout timm's `Eva` hands its blocks (`get_embed`),
so timm's own `_pos_embed` (absolute position embedding, patch dropout) drives them; the attention prepends an
identity row (angle 0) for each prefix token (class, registers), so one complex multiply rotates every token of
q and k together without slicing out the prefix.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
from timm.layers.pos_embed_sincos import freq_bands, init_random_2d_freqs
from torch import nn

ROPE_TYPES = ('mixed', 'axial')
DEFAULT_TEMPERATURE = {'mixed': 10.0, 'axial': 100.0}
_MAX_CACHED_GRIDS = 64


def apply_rotary(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (x[2i], x[2i+1]) of `x` (..., N, D) by the complex `table` (..., N, D/2).

    The table broadcasts against x's leading dims, e.g. (heads, N, D/2) against (2, B, heads, N, D).
    Computed in float32 (complex32 of bf16 does not exist), returned in x's dtype.
    """
    x_complex = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))  # (..., N, D/2) complex64
    return torch.view_as_real(x_complex * table).flatten(-2).to(x.dtype)  # (..., N, D)


def grid_coordinates(grid_size: Tuple[int, int], device: Optional[torch.device] = None) -> torch.Tensor:
    """Row and column of each cell of a (H, W) grid in row-major token order: (2, H*W) float32."""
    rows, cols = torch.meshgrid(
        torch.arange(grid_size[0], device=device, dtype=torch.float32),
        torch.arange(grid_size[1], device=device, dtype=torch.float32),
        indexing='ij',
    )
    return torch.stack([rows.flatten(), cols.flatten()])


class RotaryEmbedding2d(nn.Module):
    """Builds complex RoPE tables for a patch grid.

    `get_embed(grid_size)` (timm's interface; also `forward`) returns, for N = H*W patches:
      - ``mixed``: (depth, heads, N, head_dim/2), one table per block (Eva indexes it with the block number);
      - ``axial``: (N, head_dim/2), shared by every block and head.
    init: 'random' (the default: axial bands in a random direction per head for 'mixed') or 'zero' (mixed only:
    every frequency 0, the identity rotation, so a converted pre-LN ViT starts exactly as its source and
    fine-tuning learns the frequencies; see `vlm.encoder.conversion`).
    """

    def __init__(
            self,
            head_dim: int,
            num_heads: int,
            depth: int,
            rope_type: str = 'mixed',
            temperature: Optional[float] = None,
            init: str = 'random',
    ) -> None:
        super().__init__()
        if rope_type not in ROPE_TYPES:
            raise ValueError(f"rope_type must be one of {ROPE_TYPES}, got {rope_type!r}")
        if init not in ('random', 'zero') or (init == 'zero' and rope_type != 'mixed'):
            raise ValueError(f"rope init must be 'random', or 'zero' for mixed RoPE, got {init!r} ({rope_type})")
        if head_dim % 4:
            raise ValueError(f"2D RoPE needs head_dim divisible by 4 (two axes x channel pairs), got {head_dim}")
        self.rope_type = rope_type
        self.head_dim = head_dim
        self.temperature = DEFAULT_TEMPERATURE[rope_type] if temperature is None else float(temperature)
        self._axial_cache: Dict[Tuple[int, int, torch.device], torch.Tensor] = {}
        if rope_type == 'mixed':
            # (2, depth, heads, head_dim/2): [f_x, f_y] per block and head, learnable
            fx_fy = init_random_2d_freqs(head_dim, depth, num_heads, temperature=self.temperature, rotate=True)
            if init == 'zero':
                fx_fy.zero_()
            self.freqs = nn.Parameter(fx_fy.flip(0).contiguous())  # stored as [f_y, f_x] to match (row, col)
        else:
            bands = freq_bands(head_dim // 4, temperature=self.temperature, step=1)  # (head_dim/4,)
            zeros = torch.zeros_like(bands)
            freqs = torch.stack([torch.cat([bands, zeros]), torch.cat([zeros, bands])])  # (2, head_dim/2)
            self.register_buffer('freqs', freqs[:, None, None], persistent=False)  # (2, 1, 1, head_dim/2)

    def angles(self, grid_size: Tuple[int, int]) -> torch.Tensor:
        """Rotation angles (depth or 1, heads or 1, H*W, head_dim/2) of the patch grid (prefix tokens are not rotated:
        `RopeAttention` gives them identity rows)."""
        coords = grid_coordinates(grid_size, device=self.freqs.device)  # (2, H*W)
        freqs = self.freqs.float()
        angles = coords[0, :, None] * freqs[0, ..., None, :] + coords[1, :, None] * freqs[1, ..., None, :]
        return angles

    def get_embed(self, shape: Tuple[int, int]) -> torch.Tensor:
        """The complex rotation table of an H x W patch grid (see the class docstring)."""
        grid_size = (int(shape[0]), int(shape[1]))
        if self.rope_type == 'mixed':
            angles = self.angles(grid_size)
            return torch.polar(torch.ones_like(angles), angles)  # (depth, heads, N, head_dim/2)
        key = (*grid_size, self.freqs.device)
        table = self._axial_cache.get(key)
        if table is None:
            angles = self.angles(grid_size)[0, 0]  # (N, head_dim/2)
            table = torch.polar(torch.ones_like(angles), angles)
            if len(self._axial_cache) >= _MAX_CACHED_GRIDS:  # scale jitter visits many sizes; keep it bounded
                self._axial_cache.clear()
            self._axial_cache[key] = table
        return table

    def forward(self, grid_size: Tuple[int, int]) -> torch.Tensor:
        return self.get_embed(grid_size)

    def no_weight_decay(self) -> set:
        return {'freqs'} if self.rope_type == 'mixed' else set()

    def extra_repr(self) -> str:
        return f"rope_type={self.rope_type}, head_dim={self.head_dim}, temperature={self.temperature}"
