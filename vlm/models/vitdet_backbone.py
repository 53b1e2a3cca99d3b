"""ViTDet backbone for torchvision's detectors and for the segmenter: the encoder's last grid through a simple
feature pyramid (Li et al. 2022)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence

import torch
from torch import nn

from vlm.encoder import create_encoder, dense_features

from .pyramid import SimpleFeaturePyramid


class ViTDetBackbone(nn.Module):
    """Encoder (`vlm.encoder.create_encoder(encoder, encoder_kwargs, encoder_weights)`, headless) ->
    SimpleFeaturePyramid.

    strides: the pyramid's strides (each patch size * 2^k); extra_levels: max-pooled levels after them.
    `out_channels` (torchvision's detectors read it) is `pyramid_channels`; `featmap_names` names the pyramid
    levels without the extra ones (the levels Mask R-CNN's RoIAlign pools from).
    """

    def __init__(
            self,
            encoder: str = 'vlm_vit_small_patch16_rope_rms',
            encoder_kwargs: Optional[Dict[str, Any]] = None,
            encoder_weights: Optional[str] = None,
            pyramid_channels: int = 256,
            strides: Sequence[int] = (4, 8, 16, 32),
            extra_levels: int = 1,
    ) -> None:
        super().__init__()
        self.encoder = create_encoder(encoder, encoder_kwargs, encoder_weights)
        patch_size = self.encoder.patch_embed.patch_size[0]
        self.pyramid = SimpleFeaturePyramid(self.encoder.embed_dim, pyramid_channels, patch_size, strides,
                                            extra_levels)
        self.out_channels = pyramid_channels
        self.out_strides: List[int] = self.pyramid.out_strides
        self.featmap_names = [str(i) for i in range(len(strides))]

    def forward(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        """images (B, 3, H, W), H and W multiples of the largest stride -> {'0': (B, out, H/s0, W/s0), ...}."""
        grid = dense_features(self.encoder, images).last  # (B, C, H/p, W/p), final-normed
        return OrderedDict((str(i), level) for i, level in enumerate(self.pyramid(grid)))
