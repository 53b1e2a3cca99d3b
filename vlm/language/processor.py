"""`VisionLanguageProcessor`: images and texts -> the model's inputs (input_ids, attention_mask, pixel_values, labels).

Saved next to the model (`tokenizer*` files + `processor_config.json`) so one directory holds everything.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import BatchFeature, PreTrainedTokenizerBase

from vlm.data.errors import InputError
from vlm.data.images import load_rgb

from .tokenizer import IMAGE_TOKEN, load_tokenizer

ImageInput = Union[str, Path, Image.Image, torch.Tensor]
PROCESSOR_CONFIG = 'processor_config.json'
IGNORE_INDEX = -100


class PromptTooLongError(InputError):
    """Prompt plus image tokens do not fit the decoder's context."""


@dataclass
class ImageSettings:
    """How images become pixel_values: a square resize to `image_size`, then (x - mean) / std.

    unit = patch_size * pixel_shuffle: image_size must be a multiple of it; tokens per image = (image_size / unit)^2.
    """

    image_size: int
    patch_size: int
    pixel_shuffle: int = 1
    image_mean: List[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    image_std: List[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])

    @property
    def tokens_per_image(self) -> int:
        unit = self.patch_size * self.pixel_shuffle
        if self.image_size % unit:
            raise ValueError(f'image_size {self.image_size} is not a multiple of patch_size * pixel_shuffle = {unit}')
        return (self.image_size // unit) ** 2


class VisionLanguageProcessor:
    """Builds prompts in vlm's format (see `vlm.language.prompts`) with one `<image>` run per image.

    max_length: the decoder's context (max_position_embeddings); longer sequences raise `PromptTooLongError`,
    or with `truncation=True` lose target tokens first, then prompt text, never image tokens.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, settings: ImageSettings, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.settings = settings
        self.max_length = max_length
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)

    @classmethod
    def from_model_config(cls, tokenizer: PreTrainedTokenizerBase, config: Any) -> 'VisionLanguageProcessor':
        """From a `VisionLanguageConfig` (its image settings and the decoder's context length)."""
        settings = ImageSettings(config.image_size, config.patch_size, config.pixel_shuffle,
                                 list(config.image_mean), list(config.image_std))
        return cls(tokenizer, settings, config.text_config.max_position_embeddings)

    # ---- images ----
    def pixel_values(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """Images -> (I, 3, S, S) float pixel values, S = image_size.

        Paths, PIL images and (3, H, W) uint8 tensors of any size are resized and normalised; float (3, H, W)
        tensors are taken as already normalised (a datamodule's output) and only resized when H, W != S.
        """
        size = self.settings.image_size
        mean = torch.tensor(self.settings.image_mean).view(3, 1, 1)
        std = torch.tensor(self.settings.image_std).view(3, 1, 1)
        tensors = []
        for image in images:
            if isinstance(image, (str, Path)):
                image = load_rgb(image)  # DataError naming the file when it is missing or unreadable
            if isinstance(image, Image.Image):
                image = torch.from_numpy(np.asarray(image.convert('RGB')).copy()).permute(2, 0, 1)  # (3, H, W)
            if image.ndim != 3 or image.shape[0] != 3:
                raise ValueError(f'expected a (3, H, W) image, got shape {tuple(image.shape)}')
            normalised = image.is_floating_point()
            image = image.float() if normalised else image.float() / 255.0
            if tuple(image.shape[-2:]) != (size, size):
                image = F.interpolate(image[None], size=(size, size), mode='bilinear', antialias=True,
                                      align_corners=False)[0]  # (3, S, S)
            tensors.append(image if normalised else (image - mean) / std)
        return torch.stack(tensors)  # (I, 3, S, S)

    # ---- text ----
    def _text_ids(self, text: str) -> List[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids if text else []

    def _prompt_ids(self, prompt: str, has_image: bool) -> Tuple[List[int], List[int]]:
        """(ids of the text before the image, ids after it): the image goes where `<image>` is, else first."""
        markers = prompt.count(IMAGE_TOKEN)
        if markers > int(has_image):
            raise InputError(f'prompt {prompt!r} has {markers} <image> placeholders for {int(has_image)} images')
        before, _, after = prompt.partition(IMAGE_TOKEN) if markers else ('', '', prompt)
        return self._text_ids(before.rstrip()), self._text_ids(after.lstrip())

    def encode(self, prompt: str, has_image: bool, target: Optional[str] = None,
               truncation: bool = False) -> Tuple[List[int], List[int]]:
        """One sequence: (input ids, labels), labels = IGNORE_INDEX everywhere but the target and its eos."""
        before, after = self._prompt_ids(prompt, has_image)
        image = [self.image_token_id] * (self.settings.tokens_per_image if has_image else 0)
        target_ids = self._text_ids(target) + [self.tokenizer.eos_token_id] if target is not None else []
        fixed = 1 + len(image)  # bos + image tokens are never truncated
        excess = fixed + len(before) + len(after) + len(target_ids) - self.max_length
        if excess > 0:
            if not truncation or fixed >= self.max_length:
                raise PromptTooLongError(
                    f'{fixed + len(before) + len(after)} prompt tokens ({len(image)} image tokens) + '
                    f'{len(target_ids)} target tokens exceed the decoder context of {self.max_length} tokens; '
                    f'use a shorter text, a smaller image_size, or truncation=True')
            target_ids, excess = _cut_tail(target_ids, excess)
            after, excess = _cut_tail(after, excess)
            before, excess = _cut_tail(before, excess)
        prompt_ids = [self.tokenizer.bos_token_id] + before + image + after
        return prompt_ids + target_ids, [IGNORE_INDEX] * len(prompt_ids) + target_ids

    def __call__(
            self,
            prompts: Sequence[str],
            images: Optional[Sequence[Optional[ImageInput]]] = None,
            targets: Optional[Sequence[str]] = None,
            padding_side: str = 'left',
            truncation: bool = False,
            share_images: bool = False,
    ) -> BatchFeature:
        """prompts[i] with images[i] (None: text only) -> input_ids (B, L), attention_mask (B, L), pixel_values
        (I, 3, S, S) for the I images given, and labels (B, L) when targets are given. Left padding for
        generation, right for training.

        share_images: the same image object given for several prompts is kept once in pixel_values, and
        image_index (R,) says which row each of the R prompts with an image shows, so the model encodes it once
        (for training and single forwards; `generate` with beams expects one row per prompt)."""
        images = list(images) if images is not None else [None] * len(prompts)
        if len(images) != len(prompts):
            raise InputError(f'{len(prompts)} prompts but {len(images)} images')
        if targets is not None and len(targets) != len(prompts):
            raise ValueError(f'{len(prompts)} prompts but {len(targets)} targets')
        encoded = [self.encode(prompt, image is not None, targets[i] if targets is not None else None, truncation)
                   for i, (prompt, image) in enumerate(zip(prompts, images))]
        length = max(len(ids) for ids, _ in encoded)
        pad = self.tokenizer.pad_token_id
        input_ids, attention, labels = [], [], []
        for ids, label in encoded:
            fill = length - len(ids)
            if padding_side == 'left':
                input_ids.append([pad] * fill + ids)
                attention.append([0] * fill + [1] * len(ids))
                labels.append([IGNORE_INDEX] * fill + label)
            else:
                input_ids.append(ids + [pad] * fill)
                attention.append([1] * len(ids) + [0] * fill)
                labels.append(label + [IGNORE_INDEX] * fill)
        data: Dict[str, torch.Tensor] = {
            'input_ids': torch.tensor(input_ids, dtype=torch.long),
            'attention_mask': torch.tensor(attention, dtype=torch.long),
        }
        given = [image for image in images if image is not None]
        if share_images and given:
            rows: Dict[int, int] = {}
            index = [rows.setdefault(id(image), len(rows)) for image in given]
            distinct = list({id(image): image for image in given}.values())
            data['pixel_values'] = self.pixel_values(distinct)
            data['image_index'] = torch.tensor(index, dtype=torch.long)
        elif given:
            data['pixel_values'] = self.pixel_values(given)
        if targets is not None:
            data['labels'] = torch.tensor(labels, dtype=torch.long)
        return BatchFeature(data)

    def decode(self, generated: torch.Tensor, prompt_length: int) -> List[str]:
        """(B, prompt_length + T) output of `generate` -> the B new texts, stripped."""
        texts = self.tokenizer.batch_decode(generated[:, prompt_length:], skip_special_tokens=True)
        return [text.strip() for text in texts]

    # ---- persistence ----
    def save_pretrained(self, directory: Union[str, Path]) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(str(directory))
        config = {'image_settings': asdict(self.settings), 'max_length': self.max_length}
        (directory / PROCESSOR_CONFIG).write_text(json.dumps(config, indent=2) + '\n')

    @classmethod
    def from_pretrained(cls, directory: Union[str, Path]) -> 'VisionLanguageProcessor':
        directory = Path(directory)
        config_file = directory / PROCESSOR_CONFIG
        if not config_file.is_file():
            raise FileNotFoundError(f'{config_file} is missing: is {directory} a vlm model directory?')
        config = json.loads(config_file.read_text())
        return cls(load_tokenizer(directory), ImageSettings(**config['image_settings']), config['max_length'])


def _cut_tail(ids: List[int], excess: int) -> Tuple[List[int], int]:
    """Drop up to `excess` ids from the end of `ids`; return them and what is still in excess."""
    cut = min(excess, len(ids))
    return ids[:len(ids) - cut], excess - cut
