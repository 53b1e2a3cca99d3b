"""Captioning, visual question answering, conversations and text generation with a saved vision-language model:

    predictor = VisionLanguagePredictor.from_pretrained('runs/export/shapes_vqa')
    predictor.caption(['a.png', 'b.png'])                       # ['a red circle ...', ...]
    predictor.ask(['a.png'], 'what color is the circle?')       # ['red']
    predictor.complete(['What is the capital of France?'])      # text only, no image
    predictor.reply([{'role': 'user', 'content': '<image><image>Which has more stars?'}], [['a.png', 'b.png']])

Every prompt goes through the chat template (`vlm.language.chat`), as in training.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, List, Mapping, Optional, Sequence, Union

import torch
from safetensors import SafetensorError

from vlm.errors import DataError, InputError, MissingFileError

from .chat import Message
from .modeling import VisionLanguageModel
from .precision import check_precision, set_inference_precision
from .processor import PROCESSOR_CONFIG, ImageInput, Instances, PromptTooLongError, VisionLanguageProcessor
from .prompts import caption_conversation, text_conversation, vqa_conversation, vqa_prompt

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
        if batch_size < 1:
            raise InputError(f'batch size must be at least 1, got {batch_size}')
        self.model = model.eval()
        self.processor = processor
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, directory: Union[str, Path], device: str = 'cpu', precision: Optional[str] = None,
                        batch_size: int = 8, image_size: Optional[int] = None) -> 'VisionLanguagePredictor':
        """Load a directory written by `vlm export` / `save_pretrained` (never downloads). precision: 'fp32',
        'bf16' or 'int8' (`vlm.language.precision`); None: the precision the folder stores (`vlm export
        --precision`). image_size: run at
        another resolution than trained (RoPE encoder): more or fewer image tokens."""
        if precision is not None:
            check_precision(precision)
        directory = Path(directory)
        if not (directory / 'config.json').is_file():
            raise MissingFileError(directory, 'not a model directory (no config.json): write one with `vlm export`')
        for name in ('config.json', PROCESSOR_CONFIG):
            try:
                content = json.loads((directory / name).read_text(encoding='utf-8'))
            except (OSError, ValueError) as error:
                raise DataError(directory / name, f'not a readable JSON file ({error})') from None
            if not isinstance(content, dict):
                raise DataError(directory / name, f'expected a JSON object, got a {type(content).__name__}')
            if name == 'config.json' and content.get('model_type') != VisionLanguageModel.config_class.model_type:
                raise DataError(directory / name, f"not a vlm vision-language model (model_type "
                                                  f"{content.get('model_type')!r}, expected "
                                                  f"{VisionLanguageModel.config_class.model_type!r})",
                                field='model_type')
        if not any((directory / name).is_file() for name in ('model.safetensors', 'model.safetensors.index.json')):
            raise MissingFileError(directory, 'no model.safetensors: write the folder with `vlm export`')
        try:
            model = VisionLanguageModel.from_pretrained(str(directory), local_files_only=True, dtype='auto')
        except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise DataError(directory, f'cannot load the model ({type(error).__name__}: {first[:200]})') from None
        stored = 'bf16' if model.language_model.dtype == torch.bfloat16 else 'fp32'
        set_inference_precision(model, precision or stored)  # a bf16 folder: the image path computes in fp32
        model = model.to(device)
        processor = VisionLanguageProcessor.from_pretrained(directory)
        if image_size is not None:
            processor.image_processor.image_size = image_size
            processor.image_processor.tokens_per_image  # validates the size against patch size and pixel shuffle
        return cls(model, processor, batch_size)

    # -- generation ----------------------------------------------------------------------------------------------
    @torch.inference_mode()
    def reply(self, conversations: Sequence[Sequence[Message]],
              images: Optional[Sequence[Sequence[ImageInput]]] = None,
              instances: Optional[Mapping[int, Instances]] = None, **generation: Any) -> List[str]:
        """The assistant's next message in each conversation (its images: one per `<image>`, in order), in batches
        of `batch_size`. instances: id(image) -> its objects, for a model whose tags come from annotations (the
        oracle, `tags.source: annotations`)."""
        images = [list(group) for group in images] if images is not None else [[] for _ in conversations]
        if len(images) != len(conversations):
            raise InputError(f'{len(conversations)} conversations but {len(images)} image lists')
        texts: List[str] = []
        for start in range(0, len(conversations), self.batch_size):
            end = start + self.batch_size
            inputs = self.processor.batch_conversations(conversations[start:end], images[start:end],
                                                        add_generation_prompt=True, padding_side='left',
                                                        instances=instances)
            texts += self.generate_from(dict(inputs), **generation)
        return texts

    def generate_from(self, inputs: dict, **generation: Any) -> List[str]:
        """Generate from processor outputs (left-padded prompts); returns the new texts."""
        generation.setdefault('max_new_tokens', 32)
        if generation['max_new_tokens'] < 1:
            raise InputError(f"max_new_tokens must be at least 1, got {generation['max_new_tokens']}")
        inputs = {key: value.to(self.model.device) for key, value in inputs.items()}  # pixels: the model casts them
        length = inputs['input_ids'].shape[1]
        room = self.processor.max_length - length
        if room <= 0:
            raise PromptTooLongError(f'the prompt takes {length} of {self.processor.max_length} context tokens; '
                                     f'no room to generate')
        output = self.model.generate(**inputs, **{**generation, 'max_new_tokens': min(generation['max_new_tokens'],
                                                                                        room)})
        return self.processor.decode_generated(output, length)

    def stream(self, conversation: Sequence[Message], images: Sequence[ImageInput] = (),
               **generation: Any) -> Iterator[str]:
        """The next assistant message of one conversation, piece by piece as it is generated (transformers'
        `TextIteratorStreamer`, generation in a background thread)."""
        from threading import Thread

        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self.processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
        errors: List[BaseException] = []

        def run() -> None:
            try:
                with torch.inference_mode():
                    self.reply([conversation], [list(images)], streamer=streamer, **generation)
            except BaseException as error:  # reported to the caller below, never lost in the thread
                errors.append(error)
                streamer.end()

        thread = Thread(target=run, daemon=True)
        thread.start()
        started = False
        for piece in streamer:
            if not started:  # the answer without the blank the template writes before it, as `decode` strips
                piece = piece.lstrip()
                started = bool(piece)
            if piece:
                yield piece
        thread.join()
        if errors:
            raise errors[0]

    def caption(self, images: Sequence[ImageInput], **generation: Any) -> List[str]:
        """One caption per image (paths, PIL images or (3, H, W) uint8 tensors, any size)."""
        return self.reply([caption_conversation()] * len(images), [[image] for image in images], **generation)

    def ask(self, images: Sequence[ImageInput], questions: Union[str, Sequence[str]],
            instances: Optional[Sequence[Instances]] = None, **generation: Any) -> List[str]:
        """The answer to `questions` (one for all images, or one per image) about each image; instances: each
        image's objects, for a model whose tags come from annotations."""
        questions = [questions] * len(images) if isinstance(questions, str) else list(questions)
        if len(questions) != len(images):
            raise InputError(f'{len(questions)} questions for {len(images)} images')
        images = [self.processor.load_image(image) for image in images] if instances is not None else list(images)
        by_image = {id(image): objects for image, objects in zip(images, instances)} if instances is not None else None
        return self.reply([vqa_conversation([question]) for question in questions], [[image] for image in images],
                          instances=by_image, **generation)

    def complete(self, prompts: Sequence[str], **generation: Any) -> List[str]:
        """Text-only: the decoder's answer to each prompt (no image), through the chat template."""
        return self.reply([text_conversation(prompt) for prompt in prompts], None, **generation)

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
                pixels.append(self.processor.load_image(answer.source))  # (3, S, S) in [0, 1]
                readable.append(answer)
            except DataError as error:
                answer.error = str(error)
        if readable:
            texts = (self.caption(pixels, **generation) if question is None
                     else self.ask(pixels, question, **generation))
            for answer, text in zip(readable, texts):
                answer.text = text
        return answers
