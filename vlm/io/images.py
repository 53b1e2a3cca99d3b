"""Reading images from disk into RGB, whatever their mode; refusing missing, corrupt, truncated and huge files
(decompression bombs) with a `DataError` that names the file."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from PIL import Image, ImageFile, UnidentifiedImageError
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from vlm.errors import DataError, InputError, MissingFileError

ImageInput = Union[str, Path, Image.Image, torch.Tensor]

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


def image_unit_range(image: ImageInput) -> torch.Tensor:
    """Any image a user or a dataset gives -> (3, H, W) float32 RGB in [0, 1], one conversion for all:

    a path (`load_rgb`: alpha composited on black, 16-bit scaled), a PIL image (the same `to_rgb`), a (3, H, W)
    uint8 tensor (0..255), or a (3, H, W) float tensor already in [0, 1]. A float tensor outside [0, 1] (0..255
    floats, or already normalised) is ambiguous and refused, as is any other shape or dtype."""
    if isinstance(image, (str, Path)):
        image = load_rgb(image)  # DataError naming the file when it is missing, unreadable or huge
    if isinstance(image, Image.Image):
        image = TF.pil_to_tensor(to_rgb(image))  # (3, H, W) uint8
    if not isinstance(image, torch.Tensor):
        raise InputError(f'expected an image path, a PIL image or a (3, H, W) tensor, got {type(image).__name__}')
    if image.ndim != 3 or image.shape[0] != 3 or min(image.shape[1:]) < 1:
        raise InputError(f'expected a (3, H, W) RGB image tensor, got shape {tuple(image.shape)}')
    image = image.as_subclass(torch.Tensor)
    if image.dtype == torch.uint8:
        return image.float() / 255.0
    if not image.is_floating_point():
        raise InputError(f'expected a uint8 (0..255) or float (0..1) image tensor, got {image.dtype}')
    low, high = float(image.min()), float(image.max())
    if not (0.0 <= low and high <= 1.0):  # NaN fails too
        raise InputError(f'a float image tensor must hold values in [0, 1], got {low:.3g}..{high:.3g} (give uint8 '
                         'for 0..255, and never normalised values: the processor normalises)')
    return image.float()
