"""`VisionLanguageProcessor`: images and texts -> the model's inputs (input_ids, attention_mask, pixel_values,
image_index, labels).

Two ways in, one encoding underneath:
- conversations (`batch_conversations`): messages rendered by the chat template (`vlm.language.chat`), the loss on
  the assistant turns only: what training, `generate`, `vlm ask` / `caption` / `chat` use;
- raw prompts (`__call__(prompts, images, targets)`): text already in the decoder's format, `<s>{prompt}` and
  `' {target}</s>'`.
Each `<image>` placeholder becomes `tokens_per_image` image tokens, bound in order to the images of its sequence.
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
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from transformers import BatchFeature, PreTrainedTokenizerBase

from vlm.errors import InputError
from vlm.io.images import load_rgb

from .chat import Message, Piece, render_turns
from .tokenizer import IGNORE_INDEX, IMAGE_TOKEN, load_tokenizer

ImageInput = Union[str, Path, Image.Image, torch.Tensor]
PROCESSOR_CONFIG = 'processor_config.json'
Encoded = Tuple[List[int], List[int]]  # (input ids, labels)


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
    image_mean: List[float] = field(default_factory=lambda: list(IMAGENET_DEFAULT_MEAN))
    image_std: List[float] = field(default_factory=lambda: list(IMAGENET_DEFAULT_STD))

    @property
    def tokens_per_image(self) -> int:
        unit = self.patch_size * self.pixel_shuffle
        if self.image_size <= 0 or self.image_size % unit:
            raise InputError(f'image_size {self.image_size} is not a positive multiple of patch_size * '
                             f'pixel_shuffle = {unit}')
        return (self.image_size // unit) ** 2


class VisionLanguageProcessor:
    """Tokenizer + image settings of a `VisionLanguageModel`.

    max_length: the decoder's context (max_position_embeddings); longer sequences raise `PromptTooLongError`, or
    with `truncation=True` lose their last tokens (targets first), never image tokens.
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
                image = load_rgb(image)  # DataError naming the file when it is missing, unreadable or huge
            if isinstance(image, Image.Image):
                image = torch.from_numpy(np.asarray(image.convert('RGB')).copy()).permute(2, 0, 1)  # (3, H, W)
            if image.ndim != 3 or image.shape[0] != 3:
                raise InputError(f'expected a (3, H, W) image, got shape {tuple(image.shape)}')
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

    def encode_pieces(self, pieces: Sequence[Piece], num_images: int, truncation: bool = False) -> Encoded:
        """Pieces of text (text, learned) -> (input ids, labels): each `<image>` expanded to its image tokens, the
        labels IGNORE_INDEX where a piece is not learned. The placeholders must number `num_images`."""
        ids: List[int] = []
        labels: List[int] = []
        for text, learned in pieces:
            piece = self._text_ids(text)
            ids += piece
            labels += piece if learned else [IGNORE_INDEX] * len(piece)
        placeholders = ids.count(self.image_token_id)
        if placeholders != num_images:
            raise InputError(f'the prompt has {placeholders} <image> placeholders for {num_images} images'
                             if placeholders > num_images or num_images == 1 or placeholders
                             else f'{num_images} images but no <image> placeholder in the prompt')
        expanded_ids: List[int] = []
        expanded_labels: List[int] = []
        run = self.settings.tokens_per_image if placeholders else 0
        for token, label in zip(ids, labels):
            if token == self.image_token_id:
                expanded_ids += [token] * run
                expanded_labels += [IGNORE_INDEX] * run
            else:
                expanded_ids.append(token)
                expanded_labels.append(label)
        return self._fit(expanded_ids, expanded_labels, run * placeholders, truncation)

    def _fit(self, ids: List[int], labels: List[int], image_tokens: int, truncation: bool) -> Encoded:
        """Refuse a sequence longer than the context, or cut its tail (never image tokens)."""
        if len(ids) <= self.max_length:
            return ids, labels
        target = sum(label != IGNORE_INDEX for label in labels)
        last_image = max((i for i, token in enumerate(ids) if token == self.image_token_id), default=-1)
        if not truncation or last_image >= self.max_length:
            raise PromptTooLongError(
                f'{len(ids) - target} prompt tokens ({image_tokens} image tokens) + {target} target tokens exceed '
                f'the decoder context of {self.max_length} tokens; use a shorter text, a smaller image_size, or '
                f'truncation=True')
        return ids[:self.max_length], labels[:self.max_length]

    def encode(self, prompt: str, has_image: bool, target: Optional[str] = None,
               truncation: bool = False) -> Encoded:
        """One raw sequence: `<s>{prompt}` with the image where `<image>` is (else first), then `{target}</s>`."""
        markers = prompt.count(IMAGE_TOKEN)
        if markers > int(has_image):
            raise InputError(f'prompt {prompt!r} has {markers} <image> placeholders for {int(has_image)} images')
        if has_image and not markers:
            prompt = IMAGE_TOKEN + prompt
        pieces: List[Piece] = [(self.tokenizer.bos_token + prompt, False)]
        if target is not None:
            pieces.append((target + self.tokenizer.eos_token, True))
        return self.encode_pieces(pieces, int(has_image), truncation)

    def encode_conversation(self, messages: Sequence[Message], num_images: int,
                            add_generation_prompt: bool = False, truncation: bool = False) -> Encoded:
        """One conversation through the chat template; the loss on the assistant turns (`render_turns`)."""
        pieces = render_turns(self.tokenizer, messages, add_generation_prompt)
        return self.encode_pieces(pieces, num_images, truncation)

    # ---- batches ----
    def __call__(
            self,
            prompts: Sequence[str],
            images: Optional[Sequence[Optional[ImageInput]]] = None,
            targets: Optional[Sequence[str]] = None,
            padding_side: str = 'left',
            truncation: bool = False,
            share_images: bool = False,
    ) -> BatchFeature:
        """Raw prompts[i] with images[i] (None: text only) -> input_ids (B, L), attention_mask (B, L), pixel_values
        (I, 3, S, S) for the I images given, and labels (B, L) when targets are given. Left padding for
        generation, right for training; `share_images`: see `batch`."""
        images = list(images) if images is not None else [None] * len(prompts)
        if len(images) != len(prompts):
            raise InputError(f'{len(prompts)} prompts but {len(images)} images')
        if targets is not None and len(targets) != len(prompts):
            raise InputError(f'{len(prompts)} prompts but {len(targets)} targets')
        encoded = [self.encode(prompt, image is not None, targets[i] if targets is not None else None, truncation)
                   for i, (prompt, image) in enumerate(zip(prompts, images))]
        return self.batch(encoded, [[] if image is None else [image] for image in images], padding_side,
                          share_images, with_labels=targets is not None)

    def batch_conversations(
            self,
            conversations: Sequence[Sequence[Message]],
            images: Optional[Sequence[Sequence[ImageInput]]] = None,
            add_generation_prompt: bool = False,
            padding_side: str = 'left',
            truncation: bool = False,
            share_images: bool = False,
    ) -> BatchFeature:
        """Conversations[i] with its images[i] (a list, one per `<image>`, in order) -> the model's inputs, with
        labels on the assistant turns. `add_generation_prompt`: end each with the template's assistant opening,
        for the model to answer (inference)."""
        images = [list(group) for group in images] if images is not None else [[] for _ in conversations]
        if len(images) != len(conversations):
            raise InputError(f'{len(conversations)} conversations but {len(images)} image lists')
        encoded = [self.encode_conversation(messages, len(group), add_generation_prompt, truncation)
                   for messages, group in zip(conversations, images)]
        return self.batch(encoded, images, padding_side, share_images, with_labels=not add_generation_prompt)

    def batch(self, encoded: Sequence[Encoded], images: Sequence[Sequence[ImageInput]], padding_side: str = 'left',
              share_images: bool = False, with_labels: bool = True) -> BatchFeature:
        """Pad encoded sequences into tensors, images in order of their placeholders.

        share_images: the same image object given for several sequences is kept once in pixel_values, and
        image_index (R,) says which row each of the R placeholder runs shows, so the model encodes it once."""
        length = max(len(ids) for ids, _ in encoded)
        pad = self.tokenizer.pad_token_id
        input_ids, attention, labels = [], [], []
        for ids, label in encoded:
            fill = length - len(ids)
            left = padding_side == 'left'
            input_ids.append([pad] * fill + ids if left else ids + [pad] * fill)
            attention.append([0] * fill + [1] * len(ids) if left else [1] * len(ids) + [0] * fill)
            labels.append([IGNORE_INDEX] * fill + label if left else label + [IGNORE_INDEX] * fill)
        data: Dict[str, torch.Tensor] = {
            'input_ids': torch.tensor(input_ids, dtype=torch.long),
            'attention_mask': torch.tensor(attention, dtype=torch.long),
        }
        given = [image for group in images for image in group]
        if share_images and given:
            rows: Dict[int, int] = {}
            index = [rows.setdefault(id(image), len(rows)) for image in given]
            distinct = list({id(image): image for image in given}.values())
            data['pixel_values'] = self.pixel_values(distinct)
            data['image_index'] = torch.tensor(index, dtype=torch.long)
        elif given:
            data['pixel_values'] = self.pixel_values(given)
        if with_labels:
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
