"""Reading and checking COCO instances JSON, and mapping category ids to contiguous labels."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import torch

from vlm.errors import DataError
from vlm.io.json_files import is_id, read_json, require

from .skipping import SkipCounter


def bbox_problem(bbox: Any, width: float, height: float, tolerance: float = 1.0) -> Optional[str]:
    """What is wrong with a COCO box [x, y, w, h] of an image of width x height, or None: not 4 finite numbers,
    zero or negative size, or outside the image by more than `tolerance` pixels. The one check of ground-truth
    boxes, for the datasets and `vlm evaluate-coco` alike."""
    if (not isinstance(bbox, (list, tuple)) or len(bbox) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox)):
        return f'bbox must be 4 finite numbers [x, y, w, h], got {bbox!r}'
    x, y, w, h = bbox
    if w <= 0 or h <= 0:
        return f'bbox has zero or negative size {bbox}'
    if x < -tolerance or y < -tolerance or x + w > width + tolerance or y + h > height + tolerance:
        return f'bbox {bbox} lies outside the image ({width}x{height})'
    return None


class CategoryMap:
    """COCO category ids (any integers, with gaps) <-> contiguous labels 1..K; label 0 is background.

    This is the convention of torchvision's detectors (num_classes counts the background) and of the
    semantic label maps (0 = background).
    """

    def __init__(self, categories: Sequence[Dict[str, Any]]) -> None:
        ordered = sorted(categories, key=lambda c: c['id'])
        self.ids: List[int] = [int(c['id']) for c in ordered]
        self.names: List[str] = [str(c.get('name', c['id'])) for c in ordered]
        if len(set(self.ids)) != len(self.ids):
            raise ValueError(f"duplicate category ids in {self.ids}")
        self._label_of = {cat_id: label for label, cat_id in enumerate(self.ids, start=1)}

    @property
    def num_classes(self) -> int:
        """Number of classes including the background label 0."""
        return len(self.ids) + 1

    def __contains__(self, category_id: int) -> bool:
        return category_id in self._label_of

    def label(self, category_id: int) -> int:
        return self._label_of[category_id]

    def category_id(self, label: int) -> int:
        if not 1 <= label <= len(self.ids):
            raise KeyError(f"label {label} is not a category label (1..{len(self.ids)})")
        return self.ids[label - 1]

    def category_ids(self, labels: torch.Tensor) -> torch.Tensor:
        """Labels (N,) -> COCO category ids (N,)."""
        table = torch.tensor([0] + self.ids, dtype=torch.long, device=labels.device)
        return table[labels.long()]


class CocoIndex:
    """A COCO JSON file read and checked: images by id and their annotations, categories mapped.

    Checks each image (id, file_name, width, height) and annotation (id, image_id known, category_id known,
    bbox of 4 finite numbers with positive size inside the image up to `box_tolerance` pixels; segmentation
    present when `need_segmentation`). A bad record raises `DataError` naming the file, the record and the
    field; with `skip_counter` it is dropped and counted instead.
    """

    def __init__(
            self,
            annotation_file: Union[str, Path],
            need_segmentation: bool = False,
            skip_counter: Optional[SkipCounter] = None,
            box_tolerance: float = 1.0,
    ) -> None:
        self.path = Path(annotation_file)
        data = read_json(self.path)
        if not isinstance(data, dict):
            raise DataError(self.path, 'expected a JSON object with images and annotations')
        require(data, ('images', 'annotations', 'categories'), self.path, 'top level')
        self.data = data
        self.images: Dict[int, Dict[str, Any]] = {}
        for key in ('images', 'annotations', 'categories'):
            if not isinstance(data[key], list):
                raise DataError(self.path, f'expected a list, got {type(data[key]).__name__}', field=key)
        for index, image in enumerate(data['images']):
            what = f"images[{index}] (id {image.get('id', '?')})" if isinstance(image, dict) else f'images[{index}]'
            require(image, ('id', 'file_name', 'width', 'height'), self.path, what)
            if not is_id(image['id']):
                raise DataError(self.path, f"image id is not an integer: {image['id']!r}", record=what, field='id')
            self.images[int(image['id'])] = image
        self.image_ids: List[int] = sorted(self.images)
        for index, category in enumerate(data['categories']):
            require(category, ('id',), self.path, f'categories[{index}]')
            if not is_id(category['id']):
                raise DataError(self.path, f"category id is not an integer: {category['id']!r}",
                                record=f'categories[{index}]', field='id')
        self.categories = CategoryMap(data['categories'])
        self.annotations: Dict[int, List[Dict[str, Any]]] = {i: [] for i in self.image_ids}
        for ann in data['annotations']:
            try:
                self._check(ann, need_segmentation, box_tolerance)
            except DataError as error:
                if skip_counter is None:
                    raise
                skip_counter.add(error)
                continue
            self.annotations[int(ann['image_id'])].append(ann)

    def _check(self, ann: Dict[str, Any], need_segmentation: bool, tolerance: float) -> None:
        record = f"annotation id {ann.get('id', '?')}" if isinstance(ann, dict) else 'annotations'
        require(ann, ('id', 'image_id', 'category_id', 'bbox'), self.path, record)
        if not is_id(ann['image_id']) or int(ann['image_id']) not in self.images:
            raise DataError(self.path, f"unknown image id {ann['image_id']}", record=record, field='image_id')
        if not is_id(ann['category_id']) or ann['category_id'] not in self.categories:
            raise DataError(self.path, f"unknown category id {ann['category_id']} (known: {self.categories.ids})",
                            record=record, field='category_id')
        image = self.images[int(ann['image_id'])]
        problem = bbox_problem(ann['bbox'], image['width'], image['height'], tolerance)
        if problem:
            raise DataError(self.path, problem, record=record, field='bbox')
        if need_segmentation and not ann.get('segmentation'):
            raise DataError(self.path, 'segmentation missing', record=record, field='segmentation')
