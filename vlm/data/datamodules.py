"""LightningDataModules for ImageNet-style classification, COCO detection / instance segmentation and semantic
segmentation (label-map folders or COCO); image-text data is `vision_language.VisionLanguageDataModule`. Every path
is an argument, so a YAML config points at real data; the shapes configs point at the generated shapes dataset."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from vlm.errors import DataError
from vlm.io.json_files import read_json

from . import transforms as T
from .coco_instances import CocoInstances
from .coco_json import CategoryMap
from .collate import collate_classification, collate_detection, collate_segmentation
from .datamodule_base import VlmDataModule
from .image_folder import ClassificationFolder, ImageList
from .segmentation import CocoSemantic, SegmentationFolder


class ClassificationDataModule(VlmDataModule):
    """ImageNet layout: `root/train/<class>/*.JPEG`, `root/val/<class>/*.JPEG` (class = folder name).

    predict_dir: images to predict, either a flat folder of images or a class tree (default: the test split).
    """

    collate_fn = staticmethod(collate_classification)

    def __init__(
            self,
            root: str = 'data/imagenet',
            train_dir: str = 'train',
            val_dir: str = 'val',
            test_dir: Optional[str] = None,
            predict_dir: Optional[str] = None,
            image_size: int = 224,
            crop_pct: float = 0.875,
            train_scale: Tuple[float, float] = (0.35, 1.0),
            hflip: float = 0.5,
            color_jitter: float = 0.3,
            **kwargs: Any,
    ) -> None:
        super().__init__(root, **kwargs)
        self.save_hyperparameters()
        self.train_dir, self.val_dir, self.test_dir = train_dir, val_dir, test_dir or val_dir
        self.predict_dir = predict_dir or self.test_dir
        self.image_size, self.crop_pct = image_size, crop_pct
        self.train_scale, self.hflip, self.color_jitter = tuple(train_scale), hflip, color_jitter

    @cached_property
    def classes(self) -> List[str]:
        """Class folder names of the train split, sorted: label i is classes[i]."""
        self.ensure_data()
        train = self.path(self.train_dir)
        if not train.is_dir():
            raise DataError(train, 'train folder not found')
        classes = sorted(p.name for p in train.iterdir() if p.is_dir())
        if not classes:
            raise DataError(train, 'no class folders found')
        return classes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def class_names(self) -> List[str]:
        return self.classes

    def setup(self, stage: str) -> None:
        eval_tf = T.classification_eval(self.image_size, self.stats, self.crop_pct)
        make = lambda folder, tf: ClassificationFolder(  # noqa: E731
            self.path(folder), tf, classes=self.classes, skip_bad_samples=self.skip_bad_samples)
        if stage == 'fit':
            self.datasets['train'] = make(self.train_dir, T.classification_train(
                self.image_size, self.stats, self.train_scale, self.hflip, self.color_jitter))
        if stage in ('fit', 'validate'):
            self.datasets['val'] = make(self.val_dir, eval_tf)
        if stage == 'test':
            self.datasets['test'] = make(self.test_dir, eval_tf)
        if stage == 'predict':
            folder = self.path(self.predict_dir)
            flat = folder.is_dir() and not any(p.is_dir() for p in folder.iterdir())
            self.datasets['predict'] = (ImageList(folder, eval_tf, self.skip_bad_samples) if flat
                                        else make(self.predict_dir, eval_tf))



class CocoDataModule(VlmDataModule):
    """COCO 2017 layout: `train2017/`, `val2017/`, `annotations/instances_{train,val}2017.json`.

    with_masks: also load instance masks (Mask R-CNN). Category ids map to labels 1..K (0 = background).
    """

    collate_fn = staticmethod(collate_detection)

    def __init__(
            self,
            root: str = 'data/coco',
            train_images: str = 'train2017',
            val_images: str = 'val2017',
            train_annotations: str = 'annotations/instances_train2017.json',
            val_annotations: str = 'annotations/instances_val2017.json',
            test_images: Optional[str] = None,
            test_annotations: Optional[str] = None,
            with_masks: bool = False,
            image_size: int = 1024,
            scale_range: Tuple[float, float] = (0.5, 1.5),
            color_jitter: float = 0.2,
            **kwargs: Any,
    ) -> None:
        super().__init__(root, **kwargs)
        self.save_hyperparameters()
        self.split_paths = {
            'train': (train_images, train_annotations),
            'val': (val_images, val_annotations),
            'test': (test_images or val_images, test_annotations or val_annotations),
        }
        self.split_paths['predict'] = self.split_paths['test']
        self.with_masks = with_masks
        self.image_size, self.scale_range, self.color_jitter = image_size, tuple(scale_range), color_jitter

    def annotation_file(self, split: str) -> Path:
        return self.path(self.split_paths[split][1])

    @cached_property
    def categories(self) -> CategoryMap:
        self.ensure_data()
        path = self.annotation_file('train')
        data = read_json(path)
        if 'categories' not in data:
            raise DataError(path, 'missing required field', record='top level', field='categories')
        return CategoryMap(data['categories'])

    @property
    def num_classes(self) -> int:
        """Categories + background."""
        return self.categories.num_classes

    @property
    def class_names(self) -> List[str]:
        """Label order: 'background', then the categories by increasing id."""
        return ['background'] + self.categories.names

    def _dataset(self, split: str, transforms) -> CocoInstances:
        images, annotations = self.split_paths[split]
        return CocoInstances(self.path(images), self.path(annotations), transforms=transforms,
                             with_masks=self.with_masks, skip_bad_samples=self.skip_bad_samples)

    def setup(self, stage: str) -> None:
        if stage == 'fit':
            self.datasets['train'] = self._dataset('train', T.detection_train(
                self.image_size, self.scale_range, color_jitter=self.color_jitter))
        if stage in ('fit', 'validate'):
            self.datasets['val'] = self._dataset('val', T.detection_eval())
        if stage in ('test', 'predict'):
            self.datasets[stage] = self._dataset(stage, T.detection_eval())
        self.report_load_skips()



class SegmentationDataModule(VlmDataModule):
    """Semantic segmentation from label-map folders (`source: folders`, ADE20K-style) or COCO instances
    (`source: coco`, crowd regions ignored).

    folders: images in `{split}_images`, PNG label maps of the same stem in `{split}_labels`, `num_classes`
    and optional `class_names` given. coco: `{split}_images` + `{split}_annotations` instances JSON.
    """

    collate_fn = staticmethod(collate_segmentation)

    def __init__(
            self,
            root: str = 'data/ade20k',
            source: str = 'folders',
            train_images: str = 'images/training',
            val_images: str = 'images/validation',
            train_labels: Optional[str] = 'annotations/training',
            val_labels: Optional[str] = 'annotations/validation',
            train_annotations: Optional[str] = None,
            val_annotations: Optional[str] = None,
            num_classes: Optional[int] = None,
            class_names: Optional[List[str]] = None,
            reduce_zero_label: bool = False,
            ignore_index: int = 255,
            crop_size: int = 512,
            scale_range: Tuple[float, float] = (0.5, 2.0),
            color_jitter: float = 0.2,
            **kwargs: Any,
    ) -> None:
        super().__init__(root, **kwargs)
        # the classes are the model's hparams (linked from here, resolved); two versions would clash in the logs
        self.save_hyperparameters(ignore=['num_classes', 'class_names'])
        if source not in ('folders', 'coco'):
            raise ValueError(f"source must be 'folders' or 'coco', got {source!r}")
        if source == 'folders' and num_classes is None and class_names is None:
            raise ValueError("source 'folders' needs num_classes or class_names")
        self.source = source
        self.split_paths: Dict[str, Tuple[str, Optional[str]]] = {
            'train': (train_images, train_labels if source == 'folders' else train_annotations),
            'val': (val_images, val_labels if source == 'folders' else val_annotations),
        }
        self.split_paths['test'] = self.split_paths['predict'] = self.split_paths['val']
        self._num_classes = num_classes if num_classes is not None else (len(class_names) if class_names else None)
        self._class_names = class_names
        self.reduce_zero_label, self.ignore_index = reduce_zero_label, ignore_index
        self.crop_size, self.scale_range, self.color_jitter = crop_size, tuple(scale_range), color_jitter

    @cached_property
    def _coco_categories(self) -> CategoryMap:
        self.ensure_data()
        return CategoryMap(read_json(self.path(self.split_paths['train'][1]))['categories'])

    @property
    def num_classes(self) -> int:
        """Classes including background (label 0)."""
        if self.source == 'coco':
            return self._coco_categories.num_classes
        return self._num_classes

    @property
    def class_names(self) -> List[str]:
        if self.source == 'coco':
            return ['background'] + self._coco_categories.names
        return list(self._class_names) if self._class_names else [str(i) for i in range(self.num_classes)]

    def _dataset(self, split: str, transforms):
        images, labels = self.split_paths[split]
        names = split == 'predict'  # prediction names its files after the images
        if self.source == 'coco':
            return CocoSemantic(self.path(images), self.path(labels), transforms, self.ignore_index,
                                self.skip_bad_samples, return_names=names)
        return SegmentationFolder(self.path(images), self.path(labels), self.num_classes, transforms,
                                  self.ignore_index, self.reduce_zero_label, self.class_names, self.skip_bad_samples,
                                  return_names=names)

    def setup(self, stage: str) -> None:
        self.ensure_data()
        if stage == 'fit':
            self.datasets['train'] = self._dataset('train', T.segmentation_train(
                self.crop_size, self.scale_range, self.stats, self.ignore_index, self.color_jitter))
        if stage in ('fit', 'validate'):
            self.datasets['val'] = self._dataset('val', T.segmentation_eval(self.stats))
        if stage in ('test', 'predict'):
            self.datasets[stage] = self._dataset(stage, T.segmentation_eval(self.stats))
        self.report_load_skips()
