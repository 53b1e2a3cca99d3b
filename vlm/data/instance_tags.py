"""What a tagger learns from: each image's objects from a COCO instances JSON, as the owner map of their visible
masks, their visible centroids and their words (the category name and every string attribute of the annotation,
e.g. the shapes data's `color`). The model's processor turns them into per-cell targets
(`vlm.language.tags.cell_targets`) on its own token grid."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from vlm.errors import DataError, SkippedSample
from vlm.io.images import load_image_tensor
from vlm.language.records import ImageObjects, ImageTextRecord

from .coco_instances import decode_segmentation
from .coco_json import CocoIndex
from .skipping import SkipCounter, SkipsBadSamples

Instances = Dict[str, Any]  # 'owner' (H, W) int16, 'centroids' (M, 2) float (x, y in [0, 1]), 'words' [{field: word}]


class InstanceIndex:
    """The objects of every image of a COCO instances JSON (crowd regions left out), read on demand.

    A later annotation of an image is drawn over the earlier ones in the owner map (COCO masks of one image may
    overlap); an object's centroid is the mean of the pixels it owns (of its whole mask if it owns none).
    """

    def __init__(self, annotation_file: Union[str, Path], skip_counter: Optional[SkipCounter] = None) -> None:
        self.index = CocoIndex(annotation_file, need_segmentation=True, skip_counter=skip_counter)
        self.names = dict(zip(self.index.categories.ids, self.index.categories.names))

    @property
    def path(self) -> Path:
        return self.index.path

    def __contains__(self, image_id: int) -> bool:
        return image_id in self.index.images

    def words(self, annotation: Dict[str, Any]) -> Dict[str, str]:
        """An annotation's words: 'category' (its category's name) and every string-valued attribute."""
        strings = {key: value.strip() for key, value in annotation.items() if isinstance(value, str)}
        return {**strings, 'category': self.names[annotation['category_id']]}

    def __call__(self, image_id: int) -> Instances:
        if image_id not in self.index.images:
            raise DataError(self.path, f'no image with id {image_id}', field='image_id')
        info = self.index.images[image_id]
        height, width = int(info['height']), int(info['width'])
        annotations = [a for a in self.index.annotations[image_id] if not a.get('iscrowd', 0)]
        owner = np.full((height, width), -1, dtype=np.int16)
        masks = []
        for k, annotation in enumerate(annotations):
            mask = decode_segmentation(annotation['segmentation'], height, width).astype(bool)
            owner[mask] = k
            masks.append(mask)
        centroids = np.zeros((len(annotations), 2), dtype=np.float32)
        for k, mask in enumerate(masks):
            ys, xs = np.nonzero(owner == k) if (owner == k).any() else np.nonzero(mask)
            if len(xs):
                centroids[k] = ((xs.mean() + 0.5) / width, (ys.mean() + 0.5) / height)
            else:  # an empty mask: the box centre
                x, y, w, h = annotation_box(annotations[k])
                centroids[k] = ((x + w / 2) / width, (y + h / 2) / height)
        return {'owner': torch.from_numpy(owner), 'centroids': torch.from_numpy(centroids),
                'words': [self.words(annotation) for annotation in annotations]}


def annotation_box(annotation: Dict[str, Any]) -> List[float]:
    return [float(v) for v in annotation['bbox']]


def flip_instances(instances: Instances) -> Instances:
    """The objects of the horizontally mirrored image."""
    centroids = instances['centroids'].clone()
    centroids[:, 0] = 1.0 - centroids[:, 0]
    return {**instances, 'owner': instances['owner'].flip(-1), 'centroids': centroids}


class InstanceImages(SkipsBadSamples):
    """The images of a COCO instances JSON with their objects, for training a tagger.

    Item: an `ImageObjects` record (the image, (3, H, W) after `transform`, its id and its objects); hflip: mirror
    image and objects together with probability 0.5 (the draw follows the loader's seeding, `vlm.data.sampling`).
    """

    def __init__(self, images_dir: Union[str, Path], annotation_file: Union[str, Path],
                 transform: Optional[Callable] = None, skip_bad_samples: bool = False, hflip: bool = False) -> None:
        self.images_dir = Path(images_dir)
        self.skipped = SkipCounter()
        self.skip_bad_samples = skip_bad_samples
        self.objects = InstanceIndex(annotation_file, self.skipped if skip_bad_samples else None)
        self.image_ids = self.objects.index.image_ids
        self.transform = transform
        self.hflip = hflip

    def __len__(self) -> int:
        return len(self.image_ids)

    def read(self, i: int) -> ImageObjects:
        image_id = self.image_ids[i]
        image = load_image_tensor(self.images_dir / self.objects.index.images[image_id]['file_name'])
        instances = self.objects(image_id)
        if self.hflip and bool(torch.rand(()) < 0.5):
            image, instances = image.flip(-1), flip_instances(instances)
        if self.transform is not None:
            image = self.transform(image)
        return ImageObjects(image, image_id, instances)

    def text_records(self) -> Iterator[ImageTextRecord]:
        """None: images and their objects, no text."""
        return iter(())


class WithInstances(Dataset):
    """A caption or VQA dataset whose records also carry their image's objects (`instances`, by `image_id`)."""

    def __init__(self, dataset: Dataset, objects: InstanceIndex) -> None:
        self.dataset, self.objects = dataset, objects

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Any:
        record = self.dataset[i]
        if isinstance(record, SkippedSample):
            return record
        return dataclasses.replace(record, instances=self.objects(int(record.image_id)))

    def __getattr__(self, name: str) -> Any:  # the wrapped dataset's own attributes (skip counters, texts, ...)
        if name in ('dataset', 'objects'):
            raise AttributeError(name)
        return getattr(self.dataset, name)
