"""COCO instances (detection / instance segmentation) as a torch Dataset of tv_tensors."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Union

import numpy as np
import torch
from pycocotools import mask as mask_utils
from torchvision import tv_tensors
from torchvision.ops import box_convert
from torchvision.transforms.v2 import functional as TF

from vlm.errors import DataError
from vlm.io.images import load_rgb

from .coco_json import CocoIndex
from .skipping import SkipCounter, SkipsBadSamples

Target = Dict[str, Any]


def decode_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray:
    """COCO polygons, uncompressed or compressed RLE -> (H, W) uint8 mask."""
    if isinstance(segmentation, list):  # polygons
        rles = mask_utils.frPyObjects(segmentation, height, width)
        rle = mask_utils.merge(rles)
    elif isinstance(segmentation, dict) and isinstance(segmentation.get('counts'), list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    return mask_utils.decode(rle)


class CocoInstances(SkipsBadSamples):
    """Images of a COCO instances JSON with their boxes, labels and (optionally) masks.

    Item: (image, target) where image is a `tv_tensors.Image` (3, H, W) uint8 and target has
      boxes: `tv_tensors.BoundingBoxes` (N, 4) XYXY, labels: (N,) int64 contiguous 1..K (see `categories`),
      masks: `tv_tensors.Mask` (N, H, W) uint8 when `with_masks`, iscrowd (N,), area (N,), image_id: int,
      orig_size: (H, W).
    Crowd annotations are left out of the targets unless `include_crowd` (COCOeval reads them from the JSON).
    With `skip_bad_samples`, a bad annotation is dropped at load and a bad image makes the item None; both
    are counted in `skipped`.
    """

    def __init__(
            self,
            images_dir: Union[str, Path],
            annotation_file: Union[str, Path],
            transforms: Optional[Callable] = None,
            with_masks: bool = False,
            include_crowd: bool = False,
            skip_bad_samples: bool = False,
    ) -> None:
        self.images_dir = Path(images_dir)
        self.skipped = SkipCounter()
        self.skip_bad_samples = skip_bad_samples
        self.index = CocoIndex(annotation_file, need_segmentation=with_masks,
                               skip_counter=self.skipped if skip_bad_samples else None)
        self.categories = self.index.categories
        self.transforms = transforms
        self.with_masks = with_masks
        self.include_crowd = include_crowd

    @property
    def annotation_file(self) -> Path:
        return self.index.path

    def __len__(self) -> int:
        return len(self.index.image_ids)

    def read(self, i: int) -> Tuple[tv_tensors.Image, Target]:
        image, target = self.load(i)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def load(self, i: int) -> Tuple[tv_tensors.Image, Target]:
        """The untransformed image and target of item i."""
        image_id = self.index.image_ids[i]
        info = self.index.images[image_id]
        path = self.images_dir / info['file_name']
        pil = load_rgb(path)
        if pil.size != (info['width'], info['height']):
            raise DataError(path, f"image is {pil.size[0]}x{pil.size[1]} but the JSON says "
                                  f"{info['width']}x{info['height']}", record=f'image id {image_id}', field='width/height')
        height, width = pil.height, pil.width
        anns = [a for a in self.index.annotations[image_id] if self.include_crowd or not a.get('iscrowd', 0)]
        boxes = box_convert(torch.tensor([a['bbox'] for a in anns], dtype=torch.float32).reshape(-1, 4), 'xywh', 'xyxy')
        target: Target = {
            'boxes': tv_tensors.BoundingBoxes(boxes, format='XYXY', canvas_size=(height, width)),
            'labels': torch.tensor([self.categories.label(a['category_id']) for a in anns], dtype=torch.int64),
            'iscrowd': torch.tensor([int(a.get('iscrowd', 0)) for a in anns], dtype=torch.int64),
            'area': torch.tensor([float(a.get('area', 0.0)) for a in anns], dtype=torch.float32),
            'image_id': image_id,
            'orig_size': (height, width),
        }
        if self.with_masks:
            masks = np.zeros((len(anns), height, width), dtype=np.uint8)
            for k, ann in enumerate(anns):
                masks[k] = decode_segmentation(ann['segmentation'], height, width)
            target['masks'] = tv_tensors.Mask(torch.from_numpy(masks))
        return tv_tensors.Image(TF.pil_to_tensor(pil)), target


def semantic_map_from_instances(target: Target, ignore_index: int = 255) -> torch.Tensor:
    """Per-pixel labels (H, W) int64 from a target with masks: 0 background, later instances drawn over earlier
    ones, crowd regions set to `ignore_index`."""
    masks = target['masks'].bool()  # (N, H, W)
    label_map = torch.zeros(masks.shape[-2:], dtype=torch.int64)
    crowd = target['iscrowd'].bool()
    for mask, label in zip(masks[~crowd], target['labels'][~crowd]):
        label_map[mask] = int(label)
    for mask in masks[crowd]:
        label_map[mask] = ignore_index
    return label_map
