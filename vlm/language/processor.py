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
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from transformers import BatchFeature, PreTrainedTokenizerBase

from vlm.errors import DataError, InputError, MissingFileError
from vlm.io.images import ImageInput, image_unit_range
from vlm.io.json_files import read_json

from .chat import Message, Piece, render_turns
from .configuration import image_token_grid
from .tags import TagSettings, batch_cell_targets
from .tokenizer import IGNORE_INDEX, IMAGE_TOKEN, load_tokenizer

Instances = Mapping[str, Any]  # an image's objects: 'owner' (H, W), 'centroids' (M, 2), 'words' [{field: word}]
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
        return self.grid ** 2

    @property
    def grid(self) -> int:
        """Image tokens per side: image_size / (patch_size * pixel_shuffle)."""
        return image_token_grid(self.image_size, self.image_size, self.patch_size, self.pixel_shuffle)[0]


class VisionLanguageProcessor:
    """Tokenizer + image settings of a `VisionLanguageModel`.

    max_length: the decoder's context (max_position_embeddings); longer sequences raise `PromptTooLongError`, or
    with `truncation=True` lose their last tokens (targets first), never image tokens.
    tags: for a model with a tagger, its `TagSettings`: images given with their instances then also get tag targets
        (`vlm.language.tags.cell_targets`).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, settings: ImageSettings, max_length: int,
                 tags: Optional[TagSettings] = None) -> None:
        self.tokenizer = tokenizer
        self.settings = settings
        self.max_length = max_length
        self.tags = tags
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)

    @classmethod
    def from_model_config(cls, tokenizer: PreTrainedTokenizerBase, config: Any) -> 'VisionLanguageProcessor':
        """From a `VisionLanguageConfig` (its image settings, the decoder's context length, the tags' cover)."""
        settings = ImageSettings(config.image_size, config.patch_size, config.pixel_shuffle,
                                 list(config.image_mean), list(config.image_std))
        return cls(tokenizer, settings, config.text_config.max_position_embeddings, TagSettings.of(config.tags))

    # ---- images ----
    def load_image(self, image: ImageInput) -> torch.Tensor:
        """One image, converted by `image_unit_range` (a path, a PIL image, a uint8 tensor or a float tensor in
        [0, 1]; anything ambiguous refused) and resized (bilinear, antialiased) -> (3, S, S) in [0, 1]: read once,
        it can be given again to `pixel_values` unchanged."""
        size = self.settings.image_size
        image = image_unit_range(image)  # (3, H, W) in [0, 1]
        if tuple(image.shape[-2:]) != (size, size):
            image = F.interpolate(image[None], size=(size, size), mode='bilinear', antialias=True,
                                  align_corners=False)[0].clamp(0, 1)  # (3, S, S)
        return image

    def pixel_values(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """Images -> (I, 3, S, S) normalised pixel values, S = image_size (`load_image`, then (x - mean) / std).
        Training (the datamodules hand the collator the images as they are) and inference take this one path."""
        mean = torch.tensor(self.settings.image_mean).view(3, 1, 1)
        std = torch.tensor(self.settings.image_std).view(3, 1, 1)
        return torch.stack([(self.load_image(image) - mean) / std for image in images])  # (I, 3, S, S)

    def tag_targets(self, instances: Sequence[Instances]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Images' objects -> their tag targets on the token grid: centres (I, g, g), labels (I, V, g, g)."""
        if self.tags is None:
            raise InputError('tag targets asked of a processor whose model has no tagger (no tags in its config)')
        grid = self.settings.grid
        labelled = [{'owner': item['owner'], 'centroids': item['centroids'], 'labels': self.tag_labels(item['words'])}
                    for item in instances]
        return batch_cell_targets(labelled, (grid, grid), self.tags.min_cover)

    def tag_labels(self, words: Sequence[Mapping[str, str]]) -> torch.Tensor:
        """Objects' words -> (M, V) indices into each tag vocabulary; a missing field or a word outside its
        vocabulary is refused, naming both."""
        labels = torch.empty(len(words), len(self.tags.vocabularies), dtype=torch.long)
        for row, fields in enumerate(words):
            for column, (name, vocabulary) in enumerate(self.tags.vocabularies.items()):
                if name not in fields:
                    raise InputError(f"an object has no '{name}' (it has {sorted(fields)}): the tags' vocabularies "
                                     f'name fields every annotation must carry')
                if fields[name] not in vocabulary:
                    raise InputError(f"'{fields[name]}' is not among the tag words of '{name}': {vocabulary}")
                labels[row, column] = vocabulary.index(fields[name])
        return labels

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
            instances: Optional[Mapping[int, Instances]] = None,
    ) -> BatchFeature:
        """Conversations[i] with its images[i] (a list, one per `<image>`, in order) -> the model's inputs, with
        labels on the assistant turns. `add_generation_prompt`: end each with the template's assistant opening,
        for the model to answer (inference). instances: see `batch`."""
        images = [list(group) for group in images] if images is not None else [[] for _ in conversations]
        if len(images) != len(conversations):
            raise InputError(f'{len(conversations)} conversations but {len(images)} image lists')
        encoded = [self.encode_conversation(messages, len(group), add_generation_prompt, truncation)
                   for messages, group in zip(conversations, images)]
        return self.batch(encoded, images, padding_side, share_images, with_labels=not add_generation_prompt,
                          instances=instances)

    def batch(self, encoded: Sequence[Encoded], images: Sequence[Sequence[ImageInput]], padding_side: str = 'left',
              share_images: bool = False, with_labels: bool = True,
              instances: Optional[Mapping[int, Instances]] = None) -> BatchFeature:
        """Pad encoded sequences into tensors, images in order of their placeholders.

        share_images: the same image object given for several sequences is kept once in pixel_values, and
        image_index (R,) says which row each of the R placeholder runs shows, so the model encodes it once.
        instances: id(image) -> that image's objects (`Instances`); when every image has them, tag_centres
        (I, g, g) and tag_labels (I, V, g, g) are added, row for row with pixel_values (`cell_targets`)."""
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
            given = list({id(image): image for image in given}.values())
            data['image_index'] = torch.tensor(index, dtype=torch.long)
        if given:
            data['pixel_values'] = self.pixel_values(given)
            if instances is not None and all(id(image) in instances for image in given):
                data['tag_centres'], data['tag_labels'] = self.tag_targets([instances[id(image)] for image in given])
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
        config = {'image_settings': asdict(self.settings), 'max_length': self.max_length,
                  'tags': self.tags.as_dict() if self.tags else None}
        (directory / PROCESSOR_CONFIG).write_text(json.dumps(config, indent=2) + '\n')

    @classmethod
    def from_pretrained(cls, directory: Union[str, Path]) -> 'VisionLanguageProcessor':
        directory = Path(directory)
        config_file = directory / PROCESSOR_CONFIG
        if not config_file.is_file():
            raise MissingFileError(config_file, f'missing: is {directory} a vlm model directory (`vlm export`)?')
        config = read_json(config_file, 'processor config')
        if not isinstance(config, dict) or not isinstance(config.get('image_settings'), dict):
            raise DataError(config_file, 'expected a JSON object with image_settings (image_size, patch_size, '
                                         'pixel_shuffle, image_mean, image_std) and max_length', field='image_settings')
        try:
            settings = ImageSettings(**config['image_settings'])
            settings.tokens_per_image  # image_size a multiple of patch_size * pixel_shuffle
            max_length = int(config['max_length'])
            tags = TagSettings.of(config.get('tags'))
        except (TypeError, KeyError, ValueError, ZeroDivisionError, InputError) as error:
            raise DataError(config_file, f'unusable processor settings ({type(error).__name__}: {error})'[:300],
                            field='image_settings') from None
        if not any((directory / name).is_file() for name in ('tokenizer.json', 'tokenizer_config.json')):
            raise MissingFileError(directory, 'no tokenizer files (tokenizer.json, tokenizer_config.json): write the '
                                              'folder with `vlm export`', field='tokenizer')
        return cls(load_tokenizer(directory), settings, max_length, tags)
