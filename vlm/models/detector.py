"""Where a detector is built: torchvision's FCOS, RetinaNet and Mask R-CNN on a ViTDet backbone, with the levels,
anchors and heads of each, as a plain `nn.Module` (no Lightning):

    detector = vlm.models.build_detector('fcos', num_classes=7, encoder='vlm_vit_small_patch16_rope_rms')
    vlm.load_weights(detector, 'runs/shapes_detection/version_0/checkpoints/last.ckpt')
    detector.eval()([image])   # [{'boxes', 'scores', 'labels'}]
"""
from __future__ import annotations

from functools import partial
from typing import Any, Dict, Optional, Sequence, Tuple

from timm.layers import LayerNorm2d
from torch import nn
from torchvision.models.detection import FCOS, MaskRCNN, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops import MultiScaleRoIAlign

from vlm.encoder import encoder_normalization

from .vitdet_backbone import ViTDetBackbone

DETECTORS = ('fcos', 'retinanet', 'maskrcnn')
# pyramid strides and extra max-pooled levels: P3-P7 for the one-stage detectors, P2-P6 for Mask R-CNN (ViTDet)
DEFAULT_LEVELS: Dict[str, Tuple[Tuple[int, ...], int]] = {
    'fcos': ((8, 16, 32), 2), 'retinanet': ((8, 16, 32), 2), 'maskrcnn': ((4, 8, 16, 32), 1)}
# anchor size / level stride: torchvision's COCO defaults (FCOS 8..128, RetinaNet 32..512, Mask R-CNN 32..512)
DEFAULT_ANCHOR_SCALE = {'fcos': 1.0, 'retinanet': 4.0, 'maskrcnn': 8.0}
BOX_HEAD_FC = 1024  # Mask R-CNN's box head: 4 convs + 1 fc, as ViTDet's


def anchor_generator(detector: str, strides: Sequence[int], scale: float) -> AnchorGenerator:
    """One anchor per location (FCOS); 3 sizes x 3 aspect ratios (RetinaNet); 1 size x 3 ratios (Mask R-CNN).
    The base size of each level is `scale * stride`."""
    if detector == 'fcos':
        return AnchorGenerator(tuple((scale * s,) for s in strides), ((1.0,),) * len(strides))
    octaves = (1.0, 2 ** (1 / 3), 2 ** (2 / 3)) if detector == 'retinanet' else (1.0,)
    return AnchorGenerator(tuple(tuple(scale * s * o for o in octaves) for s in strides),
                           ((0.5, 1.0, 2.0),) * len(strides))


def build_detector(
        detector: str,
        num_classes: int,
        encoder: str = 'vlm_vit_small_patch16_rope_rms',
        encoder_kwargs: Optional[Dict[str, Any]] = None,
        encoder_weights: Optional[str] = None,
        pyramid_channels: int = 256,
        pyramid_strides: Optional[Sequence[int]] = None,
        extra_levels: Optional[int] = None,
        anchor_scale: Optional[float] = None,
        min_size: int = 1024,
        max_size: int = 1024,
        score_thresh: float = 0.05,
        detections_per_img: int = 100,
        detector_kwargs: Optional[Dict[str, Any]] = None,
) -> nn.Module:
    """The torchvision detector `detector` ('fcos' | 'retinanet' | 'maskrcnn') on a `ViTDetBackbone`.

    num_classes counts the background (label 0). pyramid_strides / extra_levels / anchor_scale: per detector by
    default (`DEFAULT_LEVELS`, `DEFAULT_ANCHOR_SCALE`). detector_kwargs: more keyword arguments of the torchvision
    class, e.g. Mask R-CNN's `box_batch_size_per_image` or `rpn_post_nms_top_n_test`, FCOS's
    `center_sampling_radius`. Images are normalised inside (`GeneralizedRCNNTransform`) with the encoder's own
    mean and std. Batches are padded to a multiple of the largest stride, so every level's map is exactly image
    size / stride, and training images are not resized (`_skip_resize`, as torchvision's LSJ recipe): the
    datamodule's scale jitter is the training resize. Evaluation resizes to min_size / max_size and maps the boxes
    back. FCOS and RetinaNet heads use GroupNorm(32, .): `pyramid_channels` must be a multiple of 32.
    """
    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
    default_strides, default_extra = DEFAULT_LEVELS[detector]
    backbone = ViTDetBackbone(encoder, encoder_kwargs, encoder_weights, pyramid_channels,
                              strides=pyramid_strides or default_strides,
                              extra_levels=default_extra if extra_levels is None else extra_levels)
    mean, std = encoder_normalization(encoder)
    strides, channels = backbone.out_strides, backbone.out_channels
    anchors = anchor_generator(detector, strides, DEFAULT_ANCHOR_SCALE[detector] if anchor_scale is None
                               else anchor_scale)
    common = dict(size_divisible=max(strides), _skip_resize=True, min_size=min_size, max_size=max_size,
                  image_mean=list(mean), image_std=list(std), **(detector_kwargs or {}))
    if detector == 'fcos':
        return FCOS(backbone, num_classes, anchor_generator=anchors, score_thresh=score_thresh,
                    detections_per_img=detections_per_img, **common)
    num_anchors = anchors.num_anchors_per_location()[0]
    if detector == 'retinanet':
        head = RetinaNetHead(channels, num_anchors, num_classes, norm_layer=partial(nn.GroupNorm, 32))
        return RetinaNet(backbone, num_classes, anchor_generator=anchors, head=head, score_thresh=score_thresh,
                         detections_per_img=detections_per_img, **common)
    names = backbone.featmap_names  # RoIAlign pools from the pyramid levels, the RPN also sees the extra one
    return MaskRCNN(
        backbone, None,  # num_classes is given to the predictors
        rpn_anchor_generator=anchors,
        rpn_head=RPNHead(channels, num_anchors, conv_depth=2),
        box_roi_pool=MultiScaleRoIAlign(featmap_names=names, output_size=7, sampling_ratio=2),
        box_head=FastRCNNConvFCHead((channels, 7, 7), [channels] * 4, [BOX_HEAD_FC], norm_layer=LayerNorm2d),
        box_predictor=FastRCNNPredictor(BOX_HEAD_FC, num_classes),
        mask_roi_pool=MultiScaleRoIAlign(featmap_names=names, output_size=14, sampling_ratio=2),
        mask_head=MaskRCNNHeads(channels, [channels] * 4, 1, norm_layer=LayerNorm2d),
        mask_predictor=MaskRCNNPredictor(channels, channels, num_classes),
        box_score_thresh=score_thresh,
        box_detections_per_img=detections_per_img,
        **common,
    )
