"""`VisionLanguageProcessor`: images and texts -> the model's inputs (input_ids, attention_mask, pixel_values,
image_index, labels), a transformers `ProcessorMixin` of a `VisionLanguageImageProcessor` and a tokenizer.

Two ways in, one encoding underneath:
- conversations (`batch_conversations`): messages rendered by the chat template (`vlm.language.chat`), the loss on
  the assistant turns only: what training, `generate`, `vlm ask` / `caption` / `chat` use;
- raw prompts (`__call__(text, images, targets)`): text already in the decoder's format, `<s>{prompt}` and
  `' {target}</s>'`.
Each `<image>` placeholder becomes `tokens_per_image` image tokens, bound in order to the images of its sequence.
Saved next to the model by `ProcessorMixin.save_pretrained` (`tokenizer*` files + `processor_config.json` holding the
image processor's settings, `max_length` and `tags`), so one directory holds everything and `AutoProcessor` loads
it after `import vlm`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from transformers import BatchFeature, PreTrainedTokenizerBase, ProcessorMixin

from vlm.errors import DataError, InputError, MissingFileError
from vlm.io.images import ImageInput
from vlm.io.json_files import read_json

from .chat import Message, Piece, render_turns
from .image_processor import VisionLanguageImageProcessor
from .tags import TagSettings, batch_cell_targets
from .tokenizer import IGNORE_INDEX, IMAGE_TOKEN, load_tokenizer

Instances = Mapping[str, Any]  # an image's objects: 'owner' (H, W), 'centroids' (M, 2), 'words' [{field: word}]
PROCESSOR_CONFIG = 'processor_config.json'
Encoded = Tuple[List[int], List[int]]  # (input ids, labels)


class PromptTooLongError(InputError):
    """Prompt plus image tokens do not fit the decoder's context."""


class VisionLanguageProcessor(ProcessorMixin):
    """Image processor + tokenizer of a `VisionLanguageModel`.

    max_length: the decoder's context (max_position_embeddings); longer sequences raise `PromptTooLongError`, or
    with `truncation=True` lose their last tokens (targets first), never image tokens.
    tags: for a model with a tagger, its `TagSettings` (or their dict): images given with their instances then also
        get tag targets (`vlm.language.tags.cell_targets`).
    """

    def __init__(self, image_processor: VisionLanguageImageProcessor, tokenizer: PreTrainedTokenizerBase,
                 max_length: int = 2048, tags: Optional[Union[TagSettings, Dict[str, Any]]] = None,
                 chat_template: Optional[str] = None) -> None:
        super().__init__(image_processor, tokenizer, chat_template=chat_template)
        self.max_length = int(max_length)
        self.tags = TagSettings.of(tags)
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)

    @classmethod
    def from_model_config(cls, tokenizer: PreTrainedTokenizerBase, config: Any) -> 'VisionLanguageProcessor':
        """From a `VisionLanguageConfig` (its image settings, the decoder's context length, the tags' cover)."""
        image_processor = VisionLanguageImageProcessor(config.image_size, config.patch_size, config.pixel_shuffle,
                                                       list(config.image_mean), list(config.image_std))
        return cls(image_processor, tokenizer, config.text_config.max_position_embeddings, config.tags)

    # ---- images ----
    def load_image(self, image: ImageInput) -> torch.Tensor:
        """One image -> (3, S, S) in [0, 1] (`VisionLanguageImageProcessor.load_image`)."""
        return self.image_processor.load_image(image)

    def pixel_values(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """Images -> (I, 3, S, S) normalised pixel values (`VisionLanguageImageProcessor.pixel_values`). Training
        (the datamodules hand the collator the images as they are) and inference take this one path."""
        return self.image_processor.pixel_values(images)

    def tag_targets(self, instances: Sequence[Instances]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Images' objects -> their tag targets on the token grid: centres (I, g, g), labels (I, V, g, g)."""
        if self.tags is None:
            raise InputError('tag targets asked of a processor whose model has no tagger (no tags in its config)')
        grid = self.image_processor.grid
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
        run = self.image_processor.tokens_per_image if placeholders else 0
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
            text: Sequence[str],
            images: Optional[Sequence[Optional[ImageInput]]] = None,
            targets: Optional[Sequence[str]] = None,
            padding_side: str = 'left',
            truncation: bool = False,
            share_images: bool = False,
            return_tensors: Optional[str] = 'pt',
    ) -> BatchFeature:
        """Raw prompts text[i] with images[i] (None: text only) -> input_ids (B, L), attention_mask (B, L),
        pixel_values (I, 3, S, S) for the I images given, and labels (B, L) when targets are given. Left padding
        for generation, right for training; `share_images`: see `batch`. Torch tensors only."""
        if return_tensors not in (None, 'pt'):
            raise ValueError(f"return_tensors must be 'pt' (torch), got {return_tensors!r}")
        prompts = [text] if isinstance(text, str) else list(text)
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
        padded = self.tokenizer.pad({'input_ids': [ids for ids, _ in encoded]}, padding=True,
                                    padding_side=padding_side, return_attention_mask=True, return_tensors='pt')
        data: Dict[str, torch.Tensor] = {'input_ids': padded['input_ids'], 'attention_mask': padded['attention_mask']}
        length = data['input_ids'].shape[1]
        labels = [[IGNORE_INDEX] * (length - len(label)) + label if padding_side == 'left'
                  else label + [IGNORE_INDEX] * (length - len(label)) for _, label in encoded]
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

    def decode_generated(self, generated: torch.Tensor, prompt_length: int) -> List[str]:
        """(B, prompt_length + T) output of `generate` -> the B new texts, stripped. (`decode` / `batch_decode` are
        the tokenizer's, as in every transformers processor.)"""
        texts = self.tokenizer.batch_decode(generated[:, prompt_length:], skip_special_tokens=True)
        return [text.strip() for text in texts]

    # ---- persistence ----
    def to_dict(self) -> Dict[str, Any]:
        """What `save_pretrained` writes to processor_config.json: the image processor's settings, max_length and the
        tags as plain JSON."""
        output = super().to_dict()
        output['tags'] = self.tags.as_dict() if self.tags else None
        return output

    @classmethod
    def from_pretrained(cls, directory: Union[str, Path], **kwargs: Any) -> 'VisionLanguageProcessor':
        """From a local folder written by `save_pretrained` (`vlm export`): never downloads. A missing or unusable
        file is one `MissingFileError` / `DataError` naming it and the field. Folders of earlier vlm versions (their
        image settings under 'image_settings') load too. `AutoProcessor.from_pretrained` arrives here."""
        directory = Path(directory)
        config_file = directory / PROCESSOR_CONFIG
        if not config_file.is_file():
            raise MissingFileError(config_file, f'missing: is {directory} a vlm model directory (`vlm export`)?')
        config = read_json(config_file, 'processor config')
        image = config.get('image_processor', config.get('image_settings')) if isinstance(config, dict) else None
        if not isinstance(image, dict):
            raise DataError(config_file, 'expected a JSON object with image_processor (image_size, patch_size, '
                                         'pixel_shuffle, image_mean, image_std) and max_length',
                            field='image_processor')
        try:
            image_processor = VisionLanguageImageProcessor(
                **{key: value for key, value in image.items() if key != 'image_processor_type'})
            image_processor.tokens_per_image  # image_size a multiple of patch_size * pixel_shuffle
            max_length = int(config['max_length'])
            tags = TagSettings.of(config.get('tags'))
        except (TypeError, KeyError, ValueError, ZeroDivisionError, InputError) as error:
            raise DataError(config_file, f'unusable processor settings ({type(error).__name__}: {error})'[:300],
                            field='image_processor') from None
        if not any((directory / name).is_file() for name in ('tokenizer.json', 'tokenizer_config.json')):
            raise MissingFileError(directory, 'no tokenizer files (tokenizer.json, tokenizer_config.json): write the '
                                              'folder with `vlm export`', field='tokenizer')
        return cls(image_processor, load_tokenizer(directory), max_length, tags)
