"""Captioning, visual question answering and text generation with a saved vision-language model, from Python:

    predictor = VisionLanguagePredictor.from_pretrained('runs/export/shapes_vqa')
    predictor.caption(['a.png', 'b.png'])                       # ['a red circle ...', ...]
    predictor.ask(['a.png'], 'what color is the circle?')       # ['red']
    predictor.complete(['Question: what is two plus two? Answer:'])   # text only, no image
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence, Union

import torch

from vlm.data.errors import DataError

from .modeling import VisionLanguageModel
from .processor import ImageInput, PromptTooLongError, VisionLanguageProcessor
from .prompts import caption_prompt, vqa_prompt

log = logging.getLogger(__name__)


@dataclass
class Answer:
    """One image's result: `text`, or `error` (why that image could not be used)."""

    source: str
    text: Optional[str] = None
    error: Optional[str] = None


class VisionLanguagePredictor:
    """Batched generation with a `VisionLanguageModel` and its processor. Generation options are transformers'
    (`max_new_tokens`, `do_sample`, `temperature`, `top_p`, `top_k`, `num_beams`, `streamer`, ...); new tokens
    are capped so that prompt + answer fit the decoder's context."""

    def __init__(self, model: VisionLanguageModel, processor: VisionLanguageProcessor, batch_size: int = 8) -> None:
        self.model = model.eval()
        self.processor = processor
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, directory: Union[str, Path], device: str = 'cpu', dtype: torch.dtype = torch.float32,
                        batch_size: int = 8, image_size: Optional[int] = None) -> 'VisionLanguagePredictor':
        """Load a directory written by `vlm export` / `save_pretrained` (never downloads). image_size: run at
        another resolution than trained (RoPE encoder): more or fewer image tokens."""
        directory = Path(directory)
        if not (directory / 'config.json').is_file():
            raise FileNotFoundError(f'{directory} is not a model directory (no config.json)')
        model = VisionLanguageModel.from_pretrained(str(directory), local_files_only=True, dtype=dtype).to(device)
        processor = VisionLanguageProcessor.from_pretrained(directory)
        if image_size is not None:
            processor.settings.image_size = image_size
            processor.settings.tokens_per_image  # validates the size against patch size and pixel shuffle
        return cls(model, processor, batch_size)

    # -- generation ----------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def generate(self, prompts: Sequence[str], images: Optional[Sequence[Optional[ImageInput]]] = None,
                 **generation: Any) -> List[str]:
        """prompts[i] with images[i] (None: text only) -> generated texts, in batches of `batch_size`."""
        images = list(images) if images is not None else [None] * len(prompts)
        generation.setdefault('max_new_tokens', 32)
        texts: List[str] = []
        for start in range(0, len(prompts), self.batch_size):
            inputs = self.processor(prompts[start:start + self.batch_size], images[start:start + self.batch_size],
                                    padding_side='left')
            inputs = {key: value.to(self.model.device) for key, value in inputs.items()}
            if 'pixel_values' in inputs:
                inputs['pixel_values'] = inputs['pixel_values'].to(self.model.dtype)
            length = inputs['input_ids'].shape[1]
            room = self.processor.max_length - length
            if room <= 0:
                raise PromptTooLongError(f'the prompt takes {length} of {self.processor.max_length} context tokens; '
                                         f'no room to generate')
            options = {**generation, 'max_new_tokens': min(generation['max_new_tokens'], room)}
            output = self.model.generate(**inputs, **options)
            texts += self.processor.decode(output, length)
        return texts

    def caption(self, images: Sequence[ImageInput], **generation: Any) -> List[str]:
        """One caption per image (paths, PIL images or (3, H, W) uint8 tensors, any size)."""
        return self.generate([caption_prompt()] * len(images), images, **generation)

    def ask(self, images: Sequence[ImageInput], questions: Union[str, Sequence[str]], **generation: Any) -> List[str]:
        """The answer to `questions` (one for all images, or one per image) about each image."""
        questions = [questions] * len(images) if isinstance(questions, str) else list(questions)
        if len(questions) != len(images):
            raise ValueError(f'{len(questions)} questions for {len(images)} images')
        return self.generate([vqa_prompt(question) for question in questions], images, **generation)

    def complete(self, prompts: Sequence[str], **generation: Any) -> List[str]:
        """Text-only generation: each prompt continued by the decoder (no image)."""
        return self.generate(list(prompts), None, **generation)

    # -- files, one error per bad file ---------------------------------------------------------------------------
    def caption_files(self, paths: Sequence[Union[str, Path]], **generation: Any) -> List[Answer]:
        return self._per_file(paths, None, **generation)

    def ask_files(self, paths: Sequence[Union[str, Path]], question: str, **generation: Any) -> List[Answer]:
        vqa_prompt(question)  # an empty question fails here, once, not per file
        return self._per_file(paths, question, **generation)

    def _per_file(self, paths: Sequence[Union[str, Path]], question: Optional[str], **generation: Any) -> List[Answer]:
        """Read every file first; unreadable ones get their error, the others are answered in batches."""
        answers = [Answer(str(path)) for path in paths]
        readable, pixels = [], []
        for answer in answers:
            try:
                pixels.append(self.processor.pixel_values([answer.source])[0])  # (3, S, S)
                readable.append(answer)
            except DataError as error:
                answer.error = str(error)
        if readable:
            texts = (self.caption(pixels, **generation) if question is None
                     else self.ask(pixels, question, **generation))
            for answer, text in zip(readable, texts):
                answer.text = text
        return answers
