"""Train and eval pipelines on `torchvision.transforms.v2`: boxes, masks and label maps move with the image."""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torchvision import tv_tensors
from torchvision.transforms import v2

Stats = Tuple[Sequence[float], Sequence[float]]  # (mean, std) per RGB channel, e.g. `vlm.encoder.encoder_normalization`
IMAGENET = (tuple(IMAGENET_DEFAULT_MEAN), tuple(IMAGENET_DEFAULT_STD))


def _to_float(mean: Sequence[float], std: Sequence[float], normalize: bool) -> list:
    steps = [v2.ToDtype({tv_tensors.Image: torch.float32, 'others': None}, scale=True)]
    if normalize:
        steps.append(v2.Normalize(mean=list(mean), std=list(std)))
    return steps


def classification_train(size: int, stats: Stats = IMAGENET, scale=(0.35, 1.0),
                         hflip: float = 0.5, color_jitter: float = 0.3) -> v2.Compose:
    """Random resized crop, flip, colour jitter; PIL or tensor image in, (3, size, size) float out."""
    return v2.Compose([
        v2.ToImage(),
        v2.RandomResizedCrop(size, scale=scale, antialias=True),
        v2.RandomHorizontalFlip(hflip),
        v2.ColorJitter(color_jitter, color_jitter, color_jitter),
        *_to_float(*stats, normalize=True),
    ])


def classification_eval(size: int, stats: Stats = IMAGENET, crop_pct: float = 0.875) -> v2.Compose:
    """Resize the short side to size / crop_pct, centre crop to size (timm's eval convention)."""
    return v2.Compose([
        v2.ToImage(),
        v2.Resize(int(round(size / crop_pct)), antialias=True),
        v2.CenterCrop(size),
        *_to_float(*stats, normalize=True),
    ])


def _sanitize() -> list:
    # drop boxes that became empty, with their labels, crowd flags, areas and masks
    return [
        v2.ClampBoundingBoxes(),
        v2.SanitizeBoundingBoxes(min_size=1.0, labels_getter=lambda s: (s[1]['labels'], s[1]['iscrowd'], s[1]['area'])),
    ]


def detection_train(size: int, scale_range=(0.5, 1.5), stats: Stats = IMAGENET,
                    normalize: bool = False, color_jitter: float = 0.2) -> v2.Compose:
    """Large-scale jitter (resize by a random factor of `size`, keep aspect), flip, colour jitter.

    Images of one batch then differ in size; torchvision's detectors batch them. `normalize` is off by
    default because their `GeneralizedRCNNTransform` normalises with the model's own mean/std.
    """
    return v2.Compose([
        v2.ScaleJitter(target_size=(size, size), scale_range=scale_range, antialias=True),
        v2.RandomHorizontalFlip(0.5),
        v2.ColorJitter(color_jitter, color_jitter, color_jitter),
        *_sanitize(),
        *_to_float(*stats, normalize=normalize),
    ])


def detection_eval(stats: Stats = IMAGENET, normalize: bool = False) -> v2.Compose:
    """Images at their own size, as float."""
    return v2.Compose(_to_float(*stats, normalize=normalize))


def segmentation_train(size: int, scale_range=(0.5, 2.0), stats: Stats = IMAGENET,
                       ignore_index: int = 255, color_jitter: float = 0.2) -> v2.Compose:
    """Random rescale (short side in size * scale_range, bounds included: (1, 1) keeps the size), crop to
    size x size (padding: image 0, labels `ignore_index`), flip, colour jitter."""
    low = int(size * scale_range[0])
    return v2.Compose([
        v2.RandomResize(low, max(int(size * scale_range[1]), low) + 1, antialias=True),  # max is exclusive
        v2.RandomCrop(size, pad_if_needed=True, fill={tv_tensors.Image: 0, tv_tensors.Mask: ignore_index}),
        v2.RandomHorizontalFlip(0.5),
        v2.ColorJitter(color_jitter, color_jitter, color_jitter),
        *_to_float(*stats, normalize=True),
    ])


def segmentation_eval(stats: Stats = IMAGENET) -> v2.Compose:
    """Images and label maps at their own size; the model handles any size (whole or sliding window)."""
    return v2.Compose(_to_float(*stats, normalize=True))


def vision_language() -> v2.Compose:
    """Image-text tasks: the image as it is, a (3, H, W) uint8 tensor; the model's processor resizes and normalises
    it in the collator, as it does at inference (`VisionLanguageProcessor.pixel_values`): one image path."""
    return v2.Compose([v2.ToImage()])
