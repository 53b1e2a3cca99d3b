"""Semantic segmentation data: image folders with PNG label maps (ADE20K-style), and COCO instances as maps."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from vlm.errors import DataError
from vlm.io.images import load_rgb

from .coco_instances import CocoInstances, semantic_map_from_instances
from .skipping import SkipCounter, SkipsBadSamples

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')
Item = Tuple[tv_tensors.Image, tv_tensors.Mask]


def load_label_map(path: Path, size: Tuple[int, int], num_classes: int, ignore_index: int,
                   reduce_zero_label: bool = False) -> torch.Tensor:
    """A single-channel PNG label map -> (H, W) int64, checked against the image size (W, H) and the classes.

    reduce_zero_label: ADE20K convention, where 0 means 'other' (-> ignore) and classes are 1..150 (-> 0..149).
    """
    if not path.is_file():
        raise DataError(path, 'label map not found', field='label_map')
    try:
        with Image.open(path) as label_image:
            if label_image.mode not in ('L', 'P', 'I', 'I;16'):
                raise DataError(path, f'label map must be single-channel (L or P), got mode {label_image.mode}',
                                field='mode')
            if label_image.size != size:
                raise DataError(path, f'label map is {label_image.size[0]}x{label_image.size[1]} but its image is '
                                      f'{size[0]}x{size[1]}', field='size')
            labels = np.array(label_image, dtype=np.int64)
    except (OSError, SyntaxError) as error:
        raise DataError(path, f'corrupt label map ({error})', field='label_map') from error
    low, high = (1, num_classes) if reduce_zero_label else (0, num_classes - 1)  # class values in the file
    valid = (labels == ignore_index) | ((labels >= low) & (labels <= high))
    if reduce_zero_label:
        valid |= labels == 0
    bad = np.unique(labels[~valid])
    if bad.size:
        allowed = (f'the classes 1..{num_classes} (reduce_zero_label: 0 is ignored, like {ignore_index})'
                   if reduce_zero_label else f'the classes 0..{num_classes - 1} (ignore value {ignore_index})')
        raise DataError(path, f'values {bad[:10].tolist()} are outside {allowed}', field='label values')
    if reduce_zero_label:
        labels = np.where((labels == 0) | (labels == ignore_index), ignore_index, labels - 1)
    return torch.from_numpy(labels)


class SegmentationFolder(SkipsBadSamples):
    """Images in `images_dir` paired by file stem with PNG label maps in `labels_dir`.

    Item: (image (3, H, W) uint8 `tv_tensors.Image`, labels (H, W) int64 `tv_tensors.Mask`) after `transforms`,
    and the image's file stem third when `return_names` (prediction names its output files after it).
    An image without a label map is refused when the dataset is built; a label map of the wrong size or with
    values outside the classes is refused when read (or counted and skipped with `skip_bad_samples`).
    """

    def __init__(
            self,
            images_dir: Union[str, Path],
            labels_dir: Union[str, Path],
            num_classes: int,
            transforms: Optional[Callable] = None,
            ignore_index: int = 255,
            reduce_zero_label: bool = False,
            class_names: Optional[Sequence[str]] = None,
            skip_bad_samples: bool = False,
            return_names: bool = False,
    ) -> None:
        self.images_dir, self.labels_dir = Path(images_dir), Path(labels_dir)
        for folder in (self.images_dir, self.labels_dir):
            if not folder.is_dir():
                raise DataError(folder, 'directory not found')
        self.images: List[Path] = sorted(p for p in self.images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.images:
            raise DataError(self.images_dir, 'no images found')
        for image in self.images:
            if not (self.labels_dir / f'{image.stem}.png').is_file():
                raise DataError(image, f'no label map {image.stem}.png in {self.labels_dir}', field='label_map')
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        self.transforms = transforms
        self.ignore_index = ignore_index
        self.reduce_zero_label = reduce_zero_label
        self.skip_bad_samples = skip_bad_samples
        self.return_names = return_names
        self.skipped = SkipCounter()

    def __len__(self) -> int:
        return len(self.images)

    def read(self, i: int) -> Item:
        image = load_rgb(self.images[i])
        labels = load_label_map(self.labels_dir / f'{self.images[i].stem}.png', image.size, self.num_classes,
                                self.ignore_index, self.reduce_zero_label)
        sample = tv_tensors.Image(TF.pil_to_tensor(image)), tv_tensors.Mask(labels)
        sample = self.transforms(*sample) if self.transforms is not None else sample
        return (*sample, self.images[i].stem) if self.return_names else sample


class CocoSemantic(SkipsBadSamples):
    """COCO instances rendered as per-pixel label maps: 0 background, 1..K categories, crowd regions ignored.
    Item: (image, labels) as `SegmentationFolder`'s, and the image's file stem third when `return_names`."""

    def __init__(
            self,
            images_dir: Union[str, Path],
            annotation_file: Union[str, Path],
            transforms: Optional[Callable] = None,
            ignore_index: int = 255,
            skip_bad_samples: bool = False,
            return_names: bool = False,
    ) -> None:
        self.instances = CocoInstances(images_dir, annotation_file, with_masks=True, include_crowd=True,
                                       skip_bad_samples=skip_bad_samples)
        self.num_classes = self.instances.categories.num_classes
        self.class_names = ['background'] + self.instances.categories.names
        self.transforms = transforms
        self.ignore_index = ignore_index
        self.return_names = return_names
        self.skip_bad_samples = skip_bad_samples
        self.skipped = self.instances.skipped

    def __len__(self) -> int:
        return len(self.instances)

    def read(self, i: int) -> Item:
        image, target = self.instances.load(i)
        sample = image, tv_tensors.Mask(semantic_map_from_instances(target, self.ignore_index))
        sample = self.transforms(*sample) if self.transforms is not None else sample
        if not self.return_names:
            return sample
        info = self.instances.index.images[self.instances.index.image_ids[i]]
        return (*sample, Path(info['file_name']).stem)
