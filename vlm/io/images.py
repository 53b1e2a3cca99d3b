"""Reading images from disk into RGB, whatever their mode; refusing missing, corrupt, truncated and huge files
(decompression bombs) with a `DataError` that names the file."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from vlm.errors import DataError, MissingFileError

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, never silently grey pixels
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485  # PIL's own default limit (about 9459 x 9459)
MAX_PIXELS_VARIABLE = 'VLM_MAX_IMAGE_PIXELS'


def max_image_pixels() -> int:
    """The pixel limit: the environment variable VLM_MAX_IMAGE_PIXELS (inherited by loader workers), else PIL's."""
    value = os.environ.get(MAX_PIXELS_VARIABLE)
    if value is None:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        limit = int(value)
    except ValueError:
        raise DataError(MAX_PIXELS_VARIABLE, f'must be a positive integer, got {value!r}') from None
    if limit <= 0:
        raise DataError(MAX_PIXELS_VARIABLE, f'must be a positive integer, got {value!r}')
    return limit


def load_rgb(path: Union[str, Path], max_pixels: Optional[int] = None) -> Image.Image:
    """Open `path` as an 8-bit RGB PIL image.

    Grayscale (L, 1), palette (P), RGBA/LA (composited on black), CMYK and 16/32-bit integer or float
    grayscale (I;16, I, F: scaled from their dtype range to 0..255) are converted, not rejected.
    A missing, unreadable, corrupt or truncated file raises `DataError` naming the file, as does one whose
    header declares more than `max_pixels` pixels (default `max_image_pixels()`): a small file can decode to
    gigabytes, so the size is checked before any pixel is decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, 'image file not found', field='file_name')
    limit = max_pixels or max_image_pixels()
    previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # vlm checks the header's size itself, below
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > limit:
                raise _too_large(path, width, height, limit)
            image.load()
            return to_rgb(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        if isinstance(error, DataError):
            raise
        raise DataError(path, f'corrupt or truncated image ({error})', field='image') from error
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def _too_large(path: Path, width: int, height: int, limit: int) -> DataError:
    return DataError(path, f'image is {width}x{height} = {width * height} pixels, more than the limit of {limit} '
                           f'(a decompression bomb?); raise {MAX_PIXELS_VARIABLE} to allow it', field='image size')


def load_image_tensor(path: Union[str, Path], max_pixels: Optional[int] = None) -> tv_tensors.Image:
    """`load_rgb` as a (3, H, W) uint8 `tv_tensors.Image`."""
    return tv_tensors.Image(TF.pil_to_tensor(load_rgb(path, max_pixels)))


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
