"""Prediction images: boxes, captions, instance masks and semantic label maps drawn with torchvision's
`draw_bounding_boxes` and `draw_segmentation_masks`, one fixed colour per class."""
from __future__ import annotations

import colorsys
from typing import List, Optional, Sequence, Tuple

import torch
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

Color = Tuple[int, int, int]


def class_color(label: int) -> Color:
    """A bright colour for a class label, the same on every image (hues spread by the golden ratio)."""
    red, green, blue = colorsys.hsv_to_rgb((label * 0.618033988749895) % 1.0, 0.85, 1.0)
    return int(red * 255), int(green * 255), int(blue * 255)


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) float in [0, 1] -> (3, H, W) uint8."""
    return (image.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8)


def draw_detections(
        image: torch.Tensor,
        boxes: torch.Tensor,
        labels: Sequence[int],
        captions: List[str],
        masks: Optional[torch.Tensor] = None,
        mask_alpha: float = 0.45,
) -> torch.Tensor:
    """image (3, H, W) uint8, boxes (N, 4) XYXY, labels (N,) class labels (for colours), captions (N,),
    masks (N, H, W) bool or None -> (3, H, W) uint8 with the masks blended in and the boxes outlined."""
    colors = [class_color(int(label)) for label in labels]
    if masks is not None and len(masks):
        image = draw_segmentation_masks(image, masks.bool(), alpha=mask_alpha, colors=colors)
    if len(boxes):
        width = max(1, min(image.shape[-2:]) // 200)
        image = draw_bounding_boxes(image, boxes.float(), labels=captions, colors=colors, width=width)
    return image


def label_palette(num_classes: int, blank: Sequence[int] = ()) -> List[Color]:
    """One colour per class label (`class_color`), black for the labels in `blank` (e.g. the background)."""
    return [(0, 0, 0) if label in blank else class_color(label) for label in range(num_classes)]


def draw_label_map(
        image: torch.Tensor,
        labels: torch.Tensor,
        num_classes: int,
        blank: Sequence[int] = (),
        alpha: float = 0.5,
) -> torch.Tensor:
    """image (3, H, W) uint8, labels (H, W) class labels -> (3, H, W) uint8 with each class present blended in
    its colour (`draw_segmentation_masks`); the labels in `blank` are left as they are."""
    present = [int(label) for label in labels.unique() if 0 <= int(label) < num_classes and int(label) not in blank]
    if not present:
        return image
    masks = torch.stack([labels == label for label in present])  # (N, H, W) bool
    return draw_segmentation_masks(image, masks, alpha=alpha, colors=[class_color(label) for label in present])
