"""The semantic segmenter as a plain `nn.Module`: encoder -> simple feature pyramid -> FPN fusion head, any input
size (pad to the largest stride, crop back), whole-image or sliding-window inference.

    segmenter = vlm.models.SemanticSegmentationModel(num_classes=7, encoder='vlm_vit_small_patch16_rope_rms')
    vlm.load_weights(segmenter, 'runs/shapes_segmentation/version_0/checkpoints/last.ckpt')
    labels = segmenter.eval().infer(images).argmax(1)   # (B, H, W)
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .segmentation_head import FpnFusionHead
from .sliding_window import slide_inference
from .vitdet_backbone import ViTDetBackbone

INFERENCE_MODES = ('whole', 'slide')


class SemanticSegmentationModel(nn.Module):
    """Per-pixel class logits from the encoder's last grid: the ViTDet simple feature pyramid (strides 4..32 by
    default) and an FPN / UPerNet-style fusion head (`FpnFusionHead`), logits upsampled to the input size.

    inference: 'whole' (the full image at once) or 'slide' (`window` x `window` windows every `stride` pixels,
    logits averaged; for images larger than the training crops), used by `infer`; both settings can be changed
    at any time (they do not change the weights).
    """

    def __init__(
            self,
            num_classes: int,
            encoder: str = 'vlm_vit_small_patch16_rope_rms',
            encoder_kwargs: Optional[Dict[str, Any]] = None,
            encoder_weights: Optional[str] = None,
            pyramid_channels: int = 256,
            pyramid_strides: Sequence[int] = (4, 8, 16, 32),
            head_channels: int = 256,
            dropout: float = 0.1,
            inference: str = 'whole',
            window: int = 512,
            stride: int = 341,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.backbone = ViTDetBackbone(encoder, encoder_kwargs, encoder_weights, pyramid_channels,
                                       strides=pyramid_strides, extra_levels=0)
        self.head = FpnFusionHead(pyramid_channels, num_classes, head_channels, len(pyramid_strides), dropout)
        patch = self.backbone.encoder.patch_embed.patch_size[0]
        self.size_divisor = math.lcm(patch, max(pyramid_strides))  # every map's size divides the padded input
        self.set_inference(inference, window, stride)

    def set_inference(self, inference: str, window: int = 512, stride: int = 341) -> None:
        """Choose how `infer` covers an image: 'whole', or 'slide' with 0 < stride <= window."""
        if inference not in INFERENCE_MODES:
            raise ValueError(f"inference must be one of {INFERENCE_MODES}, got {inference!r}")
        if inference == 'slide' and not 0 < stride <= window:
            raise ValueError(f"sliding window needs 0 < stride <= window, got window={window}, stride={stride}")
        self.inference, self.window, self.stride = inference, window, stride

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W), any H and W -> logits (B, num_classes, H, W)."""
        height, width = images.shape[-2:]
        pad_h, pad_w = -height % self.size_divisor, -width % self.size_divisor
        padded = F.pad(images, (0, pad_w, 0, pad_h))  # (B, 3, H', W'), multiples of size_divisor
        levels = list(self.backbone(padded).values())  # [(B, C, H'/s, W'/s) for s in pyramid_strides]
        logits = self.head(levels)  # (B, K, H'/s0, W'/s0)
        logits = F.interpolate(logits, size=padded.shape[-2:], mode='bilinear', align_corners=False)
        return logits[:, :, :height, :width]  # (B, K, H, W)

    def infer(self, images: torch.Tensor) -> torch.Tensor:
        """Evaluation logits (B, K, H, W) in float32, with the configured inference ('whole' or 'slide')."""
        if self.inference == 'slide':
            return slide_inference(self, images, self.num_classes, self.window, self.stride)
        return self(images).float()
