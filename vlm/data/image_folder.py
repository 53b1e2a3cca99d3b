"""ImageNet-style classification folders (`root/<class>/<image>`) on torchvision's `ImageFolder`."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple, Union

import torch
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

from vlm.errors import DataError
from vlm.io.images import load_rgb

from .skipping import SkipCounter, SkipsBadSamples


class ClassificationFolder(SkipsBadSamples, ImageFolder):
    """`torchvision.datasets.ImageFolder` reading with `load_rgb` (any image mode; corrupt files named).

    classes: the class folder names in label order; pass the train split's list to the val split so that
    labels agree even if a val folder is missing a class. Item: (transformed image, label int, file path str).
    """

    def __init__(
            self,
            root: Union[str, Path],
            transform: Optional[Callable] = None,
            classes: Optional[Sequence[str]] = None,
            skip_bad_samples: bool = False,
    ) -> None:
        if not Path(root).is_dir():
            raise DataError(root, 'classification folder not found')
        self._fixed_classes = list(classes) if classes else None
        super().__init__(str(root), transform=transform, loader=load_rgb, allow_empty=classes is not None)
        self.skip_bad_samples = skip_bad_samples
        self.skipped = SkipCounter()

    def find_classes(self, directory: str):
        if self._fixed_classes is None:
            return super().find_classes(directory)
        extra = sorted({p.name for p in Path(directory).iterdir() if p.is_dir()} - set(self._fixed_classes))
        if extra:
            raise DataError(directory, f'class folders {extra} are not among the training classes')
        return self._fixed_classes, {name: i for i, name in enumerate(self._fixed_classes)}

    def read(self, index: int) -> Tuple[torch.Tensor, int, str]:
        image, label = ImageFolder.__getitem__(self, index)
        return image, label, self.samples[index][0]


class ImageList(SkipsBadSamples):
    """Every image file directly in `folder` (sorted), for prediction. Item: (image, -1, file path str)."""

    def __init__(self, folder: Union[str, Path], transform: Optional[Callable] = None,
                 skip_bad_samples: bool = False) -> None:
        folder = Path(folder)
        if not folder.is_dir():
            raise DataError(folder, 'image folder not found')
        self.paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMG_EXTENSIONS)
        if not self.paths:
            raise DataError(folder, 'no images found')
        self.transform = transform
        self.skip_bad_samples = skip_bad_samples

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, index: int) -> Tuple[torch.Tensor, int, str]:
        image = load_rgb(self.paths[index])
        return (self.transform(image) if self.transform else image), -1, str(self.paths[index])
