"""Reading images from disk into RGB, whatever their mode; refusing corrupt or truncated files clearly."""
from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from .errors import DataError

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, never silently grey pixels


def load_rgb(path: Union[str, Path]) -> Image.Image:
    """Open `path` as an 8-bit RGB PIL image.

    Grayscale (L, 1), palette (P), RGBA/LA (composited on black), CMYK and 16/32-bit integer or float
    grayscale (I;16, I, F: scaled from their dtype range to 0..255) are converted, not rejected.
    A missing, unreadable, corrupt or truncated file raises `DataError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, 'image file not found', field='file_name')
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(path, f'corrupt or truncated image ({error})', field='image') from error


def load_image_tensor(path: Union[str, Path]) -> tv_tensors.Image:
    """`load_rgb` as a (3, H, W) uint8 `tv_tensors.Image`."""
    return tv_tensors.Image(TF.pil_to_tensor(load_rgb(path)))


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL image -> 8-bit RGB."""
    if image.mode == 'RGB':
        return image
    if image.mode in ('I;16', 'I;16B', 'I;16L', 'I', 'F'):
        array = np.asarray(image).astype(np.float64)
        top = 65535.0 if image.mode.startswith('I;16') else max(float(array.max()), 1.0)
        if image.mode == 'F':
            top = 1.0 if array.max() <= 1.0 else float(array.max())
        array = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(array, mode='L').convert('RGB')
    if image.mode in ('RGBA', 'LA', 'PA') or (image.mode == 'P' and 'transparency' in image.info):
        rgba = image.convert('RGBA')
        background = Image.new('RGBA', rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert('RGB')
    return image.convert('RGB')
