"""A COCO results list (detections): validation against the ground truth, and conversion from model outputs.

`validate_results` checks every record before evaluation and raises `CocoResultsError` naming the record index,
its image_id / category_id and the field at fault. It returns copies ready for `COCO.loadRes` (ids as int, score
and bbox as float, segm masks as compressed RLE with str counts), so the caller's records are never modified.
`detections_to_coco_results` turns torchvision-style detections into such records.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils
from torchvision.ops import box_convert

from .choices import IOU_TYPES


class CocoEvalError(ValueError):
    """Input the COCO evaluation cannot use (ground truth or results)."""


class CocoResultsError(CocoEvalError):
    """A results list, or one of its records, that cannot be evaluated; `index` and `field` say where."""

    def __init__(self, message: str, index: int | None = None, field: str | None = None) -> None:
        self.index, self.field = index, field
        super().__init__(message)


def _show(value: Any, limit: int = 60) -> str:
    """Short repr of a value for an error message (numpy scalars shown as Python numbers)."""
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= limit else text[:limit - 3] + '...'


def is_integer(value: Any) -> bool:
    """An integer (Python or numpy), not a bool."""
    return type(value) is int or (isinstance(value, numbers.Integral) and not isinstance(value, bool))


def is_finite_number(value: Any) -> bool:
    """A real number (Python or numpy, not bool) that is neither NaN nor infinite."""
    if type(value) is float:  # the common case first: the ABC checks below cost ~1 us
        return math.isfinite(value)
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


class _Record:
    """Raises errors about one record, naming its index, ids and the field."""

    def __init__(self, index: int, record: dict) -> None:
        self.index, self.record = index, record

    def error(self, field: str, problem: str) -> CocoResultsError:
        ids = ', '.join(f"{key}={_show(self.record[key])}" for key in ('image_id', 'category_id')
                        if key in self.record)
        where = f"results[{self.index}]" + (f" ({ids})" if ids else '')
        return CocoResultsError(f"{where}: field '{field}' {problem}", self.index, field)

    def get(self, field: str) -> Any:
        if field not in self.record:
            raise self.error(field, 'is missing')
        return self.record[field]


def _bbox(record: _Record) -> list[float]:
    bbox = record.get('bbox')
    if not (isinstance(bbox, (list, tuple, np.ndarray)) and len(bbox) == 4 and all(map(is_finite_number, bbox))):
        raise record.error('bbox', f"must be 4 finite numbers [x, y, width, height], got {_show(bbox)}")
    if bbox[2] < 0 or bbox[3] < 0:
        raise record.error('bbox', f"has a negative width or height: {_show(bbox)}")
    return list(map(float, bbox))


def _rle(record: _Record, segmentation: Any, height: int, width: int) -> dict:
    """Compressed RLE (str counts) of a segmentation given as RLE (compressed or not) or polygons."""
    if isinstance(segmentation, dict) and 'size' in segmentation and 'counts' in segmentation:
        size, counts = segmentation['size'], segmentation['counts']
        if not (isinstance(size, (list, tuple)) and len(size) == 2 and list(size) == [height, width]):
            raise record.error('segmentation', f"RLE size {_show(size)} is not the image's [height, width] "
                                               f"= [{height}, {width}]")
        if isinstance(counts, (str, bytes)):
            return {'size': [height, width], 'counts': counts if isinstance(counts, str) else counts.decode()}
        if not (isinstance(counts, list) and all(is_integer(c) and c >= 0 for c in counts)
                and sum(counts) == height * width):
            raise record.error('segmentation', 'RLE counts must be a str, or a list of non-negative ints '
                                               'summing to height * width')
        encoded = mask_utils.frPyObjects(segmentation, height, width)
    elif isinstance(segmentation, list) and segmentation and all(
            isinstance(polygon, list) and len(polygon) >= 6 and len(polygon) % 2 == 0
            and all(map(is_finite_number, polygon)) for polygon in segmentation):
        encoded = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    else:
        raise record.error('segmentation', f"must be an RLE dict (size + counts) or a list of polygons "
                                           f"[[x1, y1, x2, y2, x3, y3, ...], ...], got {_show(segmentation)}")
    return {'size': [height, width], 'counts': encoded['counts'].decode()}


def validate_results(results: Any, gt: dict, iou_type: str = 'bbox') -> list[dict]:
    """Check a COCO results list against the ground-truth dataset `gt` (images, categories); return clean copies.

    Every record needs image_id (an image of `gt`), category_id (a category of `gt`), a finite score and a bbox
    [x, y, w, h] (iou_type 'bbox') or a segmentation (iou_type 'segm': RLE, str counts accepted, or polygons).
    For 'segm', a bbox on the first record makes pycocotools take every record's area from its bbox, so then
    every record needs one; otherwise bboxes are dropped (pycocotools derives them from the masks).
    """
    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type must be one of {IOU_TYPES}, got {iou_type!r}")
    if not isinstance(results, list):
        raise CocoResultsError(f"results must be a list of result records, got {type(results).__name__}")
    sizes = {image['id']: (image.get('height'), image.get('width')) for image in gt['images']}
    category_ids = {category['id'] for category in gt['categories']}
    segm = iou_type == 'segm'
    first = results[0] if results and isinstance(results[0], dict) else {}
    need_bbox = not segm or ('bbox' in first and not (isinstance(first['bbox'], list) and first['bbox'] == []))
    clean = []
    for index, raw in enumerate(results):
        if not isinstance(raw, dict):
            raise CocoResultsError(f"results[{index}]: must be a dict (a result record), got "
                                   f"{type(raw).__name__}", index)
        record = _Record(index, raw)
        image_id, category_id, score = record.get('image_id'), record.get('category_id'), record.get('score')
        if not (is_integer(image_id) and image_id in sizes):
            raise record.error('image_id', 'is not the id of an image of the ground truth')
        if not (is_integer(category_id) and category_id in category_ids):
            raise record.error('category_id', 'is not the id of a category of the ground truth')
        if not is_finite_number(score):
            raise record.error('score', f"must be a finite number, got {_show(score)}")
        item = {**raw, 'image_id': int(image_id), 'category_id': int(category_id), 'score': float(score)}
        if need_bbox:
            item['bbox'] = _bbox(record)
        else:
            item.pop('bbox', None)
        if segm:
            item['segmentation'] = _rle(record, record.get('segmentation'), *sizes[image_id])
        clean.append(item)
    return clean


def _category_lookup(category_ids_of_labels: torch.Tensor | Mapping[int, int] | Callable[[int], int],
                     labels: torch.Tensor) -> list[int]:
    if isinstance(category_ids_of_labels, torch.Tensor):
        return category_ids_of_labels.cpu()[labels.cpu().long()].tolist()
    lookup = (category_ids_of_labels.__getitem__ if isinstance(category_ids_of_labels, Mapping)
              else category_ids_of_labels)
    return [int(lookup(label)) for label in labels.tolist()]


def _masks_to_rles(masks: torch.Tensor) -> list[dict]:
    """(N, H, W) bool / uint8 masks -> compressed RLEs with str counts."""
    if masks.dim() != 3 or masks.dtype not in (torch.bool, torch.uint8):
        raise ValueError(f"masks must be (N, H, W) bool or uint8 (threshold soft masks first), "
                         f"got {tuple(masks.shape)} {masks.dtype}")
    array = np.asfortranarray(masks.detach().cpu().to(torch.uint8).permute(1, 2, 0).numpy())
    return [{'size': rle['size'], 'counts': rle['counts'].decode()} for rle in mask_utils.encode(array)]


def detections_to_coco_results(
        image_ids: Sequence[int],
        boxes_xyxy: Sequence[torch.Tensor],
        scores: Sequence[torch.Tensor],
        labels: Sequence[torch.Tensor],
        category_ids_of_labels: torch.Tensor | Mapping[int, int] | Callable[[int], int],
        masks: Sequence[torch.Tensor] | None = None,
) -> list[dict]:
    """COCO results records from per-image torchvision-style detections.

    For image i: boxes_xyxy[i] (N, 4) absolute XYXY, scores[i] (N,), labels[i] (N,) contiguous labels mapped to
    COCO category ids by `category_ids_of_labels` (a lookup tensor indexed by label, a mapping or a callable),
    and optionally masks[i] (N, H, W) bool / uint8. Records: bbox XYWH rounded to 2 decimals, score rounded to
    5, segmentation as RLE with str counts.
    """
    per_image = [image_ids, boxes_xyxy, scores, labels] + ([masks] if masks is not None else [])
    if len({len(items) for items in per_image}) != 1:
        raise ValueError(f"image_ids, boxes_xyxy, scores, labels (and masks) must have one entry per image, "
                         f"got lengths {[len(items) for items in per_image]}")
    results = []
    for i, image_id in enumerate(image_ids):
        xyxy = boxes_xyxy[i].detach().cpu().double().reshape(-1, 4)
        counts = [len(xyxy), scores[i].numel(), labels[i].numel()] + ([len(masks[i])] if masks is not None else [])
        if len(set(counts)) != 1:
            raise ValueError(f"image {image_id}: boxes, scores, labels (and masks) must count the same detections, "
                             f"got {counts}")
        boxes = box_convert(xyxy, 'xyxy', 'xywh')
        categories = _category_lookup(category_ids_of_labels, labels[i])
        rles = _masks_to_rles(masks[i]) if masks is not None else None
        for j, (box, score) in enumerate(zip(boxes.tolist(), scores[i].detach().cpu().double().tolist())):
            record = {'image_id': int(image_id), 'category_id': categories[j],
                      'bbox': [round(v, 2) for v in box], 'score': round(score, 5)}
            if rles is not None:
                record['segmentation'] = rles[j]
            results.append(record)
    return results
