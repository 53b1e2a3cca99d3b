"""ViTDet backbone for torchvision's detectors: the vlm encoder's last grid through a simple feature pyramid."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Sequence

import timm
import torch
from timm.models import group_parameters
from torch import nn

from vlm.encoder import dense_features, load_encoder_weights
from vlm.pyramid import SimpleFeaturePyramid


class ViTDetBackbone(nn.Module):
    """timm encoder (`encoder` + `encoder_kwargs`, created with num_classes=0) -> SimpleFeaturePyramid.

    strides: the pyramid's strides (each patch size * 2^k); extra_levels: max-pooled levels after them.
    pretrained_weights: a local .safetensors / .pth file or vlm checkpoint for the encoder (head keys skipped).
    `out_channels` (torchvision's detectors read it) is `pyramid_channels`; `featmap_names` names the pyramid
    levels without the extra ones (the levels Mask R-CNN's RoIAlign pools from).
    """

    def __init__(
            self,
            encoder: str = 'vlm_vit_small_patch16_rope_rms',
            encoder_kwargs: Optional[Dict[str, Any]] = None,
            pretrained_weights: Optional[str] = None,
            pyramid_channels: int = 256,
            strides: Sequence[int] = (4, 8, 16, 32),
            extra_levels: int = 1,
    ) -> None:
        super().__init__()
        self.encoder = timm.create_model(encoder, num_classes=0, **(encoder_kwargs or {}))
        if pretrained_weights:
            load_encoder_weights(self.encoder, pretrained_weights, strict=False, exclude_prefixes=('head.',))
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


def encoder_layer_matcher(encoder: nn.Module, prefix: str) -> Callable[[str], int]:
    """A timm `group_matcher` for a model holding `encoder` under `prefix` (e.g. 'model.backbone.encoder.').

    Encoder parameters keep timm's grouping of the encoder alone (stem 0, block i -> i + 1, the final norm with
    the last block, parameters timm does not group, e.g. learnable RoPE frequencies, on top); every other
    parameter (pyramid, heads) joins the top group. With timm's layer-wise lr decay block i gets
    decay ** (depth - i) and the pyramid and heads the full lr, as in ViTDet.
    """
    layers = group_parameters(encoder, encoder.group_matcher(coarse=False), reverse=True)  # name -> layer id
    top = max(layers.values())
    return lambda name: layers.get(name[len(prefix):], top) if name.startswith(prefix) else top
