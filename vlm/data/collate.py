"""Collate functions that drop skipped samples and count them by reason, so the count reaches the main process."""
from __future__ import annotations

from typing import Any, Dict, Sequence

import torch
from torch.utils.data import default_collate

from .skipping import split_skipped


def collate_classification(batch: Sequence[Any]) -> Dict[str, Any]:
    """[(image (3, H, W), label, path)] -> {'images': (B, 3, H, W), 'labels': (B,), 'paths': [str], 'skipped'}."""
    items, skipped = split_skipped(batch)
    if not items:
        return {'images': torch.empty(0), 'labels': torch.empty(0, dtype=torch.long), 'paths': [], 'skipped': skipped}
    images, labels, paths = default_collate(items)
    return {'images': images, 'labels': labels, 'paths': list(paths), 'skipped': skipped}


def collate_detection(batch: Sequence[Any]) -> Dict[str, Any]:
    """[(image (3, Hi, Wi), target)] -> {'images': [..], 'targets': [..], 'skipped': Counter}; sizes may differ."""
    items, skipped = split_skipped(batch)
    return {'images': [image for image, _ in items], 'targets': [target for _, target in items], 'skipped': skipped}


def collate_segmentation(batch: Sequence[Any]) -> Dict[str, Any]:
    """[(image (3, H, W), labels (H, W)[, name])] -> {'images': (B, 3, H, W) or list if sizes differ, 'masks':
    same, 'skipped': Counter, and 'names': [str] when the items carry their names}."""
    items, skipped = split_skipped(batch)
    images = [item[0] for item in items]
    masks = [item[1].long() for item in items]
    out: Dict[str, Any] = {'images': images, 'masks': masks, 'skipped': skipped}
    if items and len(items[0]) > 2:
        out['names'] = [item[2] for item in items]
    if images and all(image.shape == images[0].shape for image in images):
        out.update(images=torch.stack(images), masks=torch.stack(masks))
    return out


def collate_records(batch: Sequence[Any]) -> Dict[str, Any]:
    """[record, ...] -> {'items': [record, ...], 'skipped': Counter}: the image-text records as they are (a batch may
    mix kinds), for a loader without the vision-language task's collators."""
    items, skipped = split_skipped(batch)
    return {'items': list(items), 'skipped': skipped}
