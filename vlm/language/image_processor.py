"""`VisionLanguageImageProcessor`: images -> the model's `pixel_values`, as a transformers image processor (its settings
are saved inside the processor's `processor_config.json`; `AutoImageProcessor` knows it after `import vlm`).

It is vlm's one image path: the datasets hand their images as they are (uint8) to the collator, which comes here, as
inference does. Every input form goes through `vlm.io.images.image_unit_range` (a path, a PIL image, a uint8 tensor
or a float tensor in [0, 1]; anything ambiguous refused in one message), then a square bilinear resize and
(x - mean) / std.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from transformers import BaseImageProcessor, BatchFeature

from vlm.io.images import ImageInput, image_unit_range

from .configuration import image_token_grid


class VisionLanguageImageProcessor(BaseImageProcessor):
    """A square resize to `image_size`, then (x - mean) / std; image_size must be a multiple of patch_size *
    pixel_shuffle, and each image gives (image_size / (patch_size * pixel_shuffle))^2 tokens to the decoder.
    `__call__` / `preprocess` are transformers' entry points; no torchvision / PIL backend of transformers runs."""

    model_input_names = ['pixel_values']

    def __init__(self, image_size: int = 224, patch_size: int = 16, pixel_shuffle: int = 1,
                 image_mean: Optional[Sequence[float]] = None, image_std: Optional[Sequence[float]] = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.image_size, self.patch_size, self.pixel_shuffle = int(image_size), int(patch_size), int(pixel_shuffle)
        self.image_mean = [float(v) for v in (IMAGENET_DEFAULT_MEAN if image_mean is None else image_mean)]
        self.image_std = [float(v) for v in (IMAGENET_DEFAULT_STD if image_std is None else image_std)]
        if len(self.image_mean) != 3 or len(self.image_std) != 3:
            raise ValueError(f'image_mean and image_std need 3 values (RGB), got {self.image_mean} and '
                             f'{self.image_std}')

    @property
    def grid(self) -> int:
        """Image tokens per side: image_size / (patch_size * pixel_shuffle) (`image_token_grid` checks it)."""
        return image_token_grid(self.image_size, self.image_size, self.patch_size, self.pixel_shuffle)[0]

    @property
    def tokens_per_image(self) -> int:
        return self.grid ** 2

    def load_image(self, image: ImageInput) -> torch.Tensor:
        """One image -> (3, S, S) in [0, 1], S = image_size (bilinear, antialiased): read once, it can be given
        again to `pixel_values` unchanged."""
        size = self.image_size
        image = image_unit_range(image)  # (3, H, W) in [0, 1]
        if tuple(image.shape[-2:]) != (size, size):
            image = F.interpolate(image[None], size=(size, size), mode='bilinear', antialias=True,
                                  align_corners=False)[0].clamp(0, 1)  # (3, S, S)
        return image

    def pixel_values(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """Images -> (I, 3, S, S) normalised pixel values."""
        mean = torch.tensor(self.image_mean).view(3, 1, 1)
        std = torch.tensor(self.image_std).view(3, 1, 1)
        return torch.stack([(self.load_image(image) - mean) / std for image in images])

    def preprocess(self, images: Sequence[ImageInput], return_tensors: Optional[str] = 'pt', **kwargs: Any
                   ) -> BatchFeature:
        """Images -> BatchFeature {'pixel_values': (I, 3, S, S)} (torch tensors)."""
        if return_tensors not in (None, 'pt'):
            raise ValueError(f"return_tensors must be 'pt' (torch), got {return_tensors!r}")
        if not isinstance(images, (list, tuple)):
            images = [images]
        return BatchFeature({'pixel_values': self.pixel_values(images)})
