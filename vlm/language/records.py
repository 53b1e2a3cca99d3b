"""The records vlm's image-text datasets return: one typed class per kind, which knows what it teaches (its training
conversations), what the model is asked about it at evaluation (its prompts) and what each answer is scored against
(the prompt's `Reference`). The collator, the task, the tokenizer's corpus and the metrics ask the record; nothing
dispatches on dict keys.

    CaptionRecord       an image and its reference captions          scored by `CaptionScores` ('captions')
    VqaRecord           an image and one or more questions about it   scored by `VqaAccuracy` ('vqa')
    ConversationRecord  images and a LLaVA-style dialogue             each assistant turn by `ConversationAccuracy`
    ImageObjects        an image with its annotated objects, no text  the cell tagger's targets only

A new image-text format is a dataset whose items are these records, or records of a new `ImageTextRecord` subclass
(with a new `Reference` when it is scored differently); `docs/extending.md` walks through one.
"""
from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Iterator, List, Optional, Sequence, Tuple

from .chat import Message
from .prompts import caption_conversation, caption_text, vqa_conversation, vqa_text

Sample = Tuple[List[Message], List[Any]]  # a conversation and its images, in the order of their placeholders
PACKINGS = ('sequences', 'turns')


def check_packing(texts_per_image: int, packing: str) -> None:
    """Refuse a negative `texts_per_image` or an unknown `packing`, in one line each."""
    if texts_per_image < 0:
        raise ValueError(f"texts_per_image must be >= 0 (0: all of an image's texts), got {texts_per_image}")
    if packing not in PACKINGS:
        raise ValueError(f'packing must be one of {PACKINGS}, got {packing!r}')


class Choose:
    """Which of an image's texts one training step learns: `count` of them drawn without replacement (0: all), by
    Python's global `random` (seeded per loader worker by torch), so a collator holding it pickles to spawned
    workers and each worker draws its own."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __call__(self, items: Sequence[Any]) -> List[Any]:
        count = self.count or len(items)
        return random.sample(list(items), min(count, len(items)))


class Reference(ABC):
    """What a generated text is scored against, and how `vlm predict` writes it.

    metric: the name of the text metric that scores it (a key of `vlm.evaluation.TEXT_METRICS`, where a new kind
        registers its own); results_file: the file `vlm predict` writes it to.
    """

    metric: ClassVar[str]
    results_file: ClassVar[str]

    @abstractmethod
    def score(self, metric: Any, text: str) -> None:
        """Add `text`, the model's answer, to `metric` (a `TEXT_METRICS[self.metric]` instance)."""

    @abstractmethod
    def result(self, text: str) -> Dict[str, Any]:
        """`text` as one entry of `results_file`."""


@dataclass
class CaptionReference(Reference):
    image_id: int
    captions: List[str]

    metric: ClassVar[str] = 'captions'
    results_file: ClassVar[str] = 'captions_results.json'

    def score(self, metric: Any, text: str) -> None:
        metric.update([self.image_id], [text], [self.captions])

    def result(self, text: str) -> Dict[str, Any]:
        return {'image_id': self.image_id, 'caption': text}


@dataclass
class AnswerReference(Reference):
    question_id: int
    answers: List[str]  # the human answers (ten in VQAv2)
    answer_type: str = ''

    metric: ClassVar[str] = 'vqa'
    results_file: ClassVar[str] = 'vqa_results.json'

    def score(self, metric: Any, text: str) -> None:
        metric.update([self.question_id], [text], [self.answers], [self.answer_type])

    def result(self, text: str) -> Dict[str, Any]:
        return {'question_id': self.question_id, 'answer': text}


@dataclass
class TurnReference(Reference):
    id: str  # the conversation's
    turn: int  # the index of the assistant message
    reference: str
    images: int  # how many images the conversation has

    metric: ClassVar[str] = 'conversations'
    results_file: ClassVar[str] = 'conversation_results.json'

    def score(self, metric: Any, text: str) -> None:
        metric.update([(self.id, self.turn)], [text], [self.reference], [self.images])

    def result(self, text: str) -> Dict[str, Any]:
        return {'id': self.id, 'turn': self.turn, 'answer': text}


@dataclass
class Prompt:
    """One evaluation question: the messages for the model to continue, their images, and its answer's reference."""
    messages: List[Message]
    images: List[Any]
    reference: Reference


class ImageTextRecord(ABC):
    """One item of the vision-language task. `instances`: its image's objects (`vlm.data.instance_tags`), when the
    datamodule attaches them (`attach_instances`), for the tagger's targets; None otherwise."""

    images: List[Any]  # (3, H, W) uint8 tensors after the dataset's transform; a property of one-image records
    instances: Optional[Dict[str, Any]]

    @abstractmethod
    def training_samples(self, choose: Choose, packing: str = 'sequences') -> List[Sample]:
        """The conversations one training step learns from this record, each with its images. `choose` picks which
        of several texts of one image; packing 'turns' may join them in one multi-turn conversation."""

    @abstractmethod
    def validation_sample(self) -> Sample:
        """Its first text with the answer: what the validation loss is computed on."""

    @abstractmethod
    def prompts(self) -> List[Prompt]:
        """What the model is asked about it at evaluation, each with what the answer is scored against."""

    @abstractmethod
    def corpus(self) -> Iterator[str]:
        """Its texts in the form the model reads them: what a fresh tokenizer is trained on."""


@dataclass(eq=False)  # holds image tensors: compared by identity
class CaptionRecord(ImageTextRecord):
    """An image and its reference captions (COCO captions). Each caption is its own sequence in training: packed,
    a later caption of an image could copy the earlier ones instead of looking at it. Evaluation captions the image
    and scores the caption against all references."""
    image: Any
    captions: List[str]
    image_id: int
    instances: Optional[Dict[str, Any]] = None

    @property
    def images(self) -> List[Any]:
        return [self.image]

    def training_samples(self, choose: Choose, packing: str = 'sequences') -> List[Sample]:
        return [(caption_conversation(caption), [self.image]) for caption in choose(self.captions)]

    def validation_sample(self) -> Sample:
        return caption_conversation(self.captions[0]), [self.image]

    def prompts(self) -> List[Prompt]:
        return [Prompt(caption_conversation(), [self.image], CaptionReference(int(self.image_id), list(self.captions)))]

    def corpus(self) -> Iterator[str]:
        return (caption_text(caption) for caption in self.captions)


@dataclass
class Question:
    """One VQA question: its text, the training answer (the humans' most common), the human answers it is scored
    against, VQAv2's answer type, and its ids."""
    question: str
    answer: str
    answers: List[str]
    answer_type: str
    question_id: int
    image_id: int


@dataclass(eq=False)  # holds image tensors: compared by identity
class VqaRecord(ImageTextRecord):
    """An image and questions about it (VQAv2): one question, or all of an image's with `group_by_image`. Training
    learns the chosen questions, one sequence each or (packing 'turns') as one multi-turn conversation; evaluation
    asks the first."""
    image: Any
    image_id: int
    questions: List[Question]
    instances: Optional[Dict[str, Any]] = None

    @property
    def images(self) -> List[Any]:
        return [self.image]

    def training_samples(self, choose: Choose, packing: str = 'sequences') -> List[Sample]:
        chosen = choose(self.questions)
        if packing == 'turns':
            return [(vqa_conversation([q.question for q in chosen], [q.answer for q in chosen]), [self.image])]
        return [(vqa_conversation([q.question], [q.answer]), [self.image]) for q in chosen]

    def validation_sample(self) -> Sample:
        first = self.questions[0]
        return vqa_conversation([first.question], [first.answer]), [self.image]

    def prompts(self) -> List[Prompt]:
        first = self.questions[0]
        return [Prompt(vqa_conversation([first.question]), [self.image],
                       AnswerReference(int(first.question_id), list(first.answers), first.answer_type))]

    def corpus(self) -> Iterator[str]:
        return (vqa_text(q.question, q.answer) for q in self.questions)


@dataclass(eq=False)  # holds image tensors: compared by identity
class ConversationRecord(ImageTextRecord):
    """A dialogue about one or more images (LLaVA's format): `messages` [{'role', 'content'}, ...], each `<image>`
    bound to the next image. Training learns every assistant turn; evaluation asks each assistant turn given the
    reference turns before it (as a multi-turn benchmark scores each turn)."""
    images: List[Any]
    messages: List[Message]
    id: str
    instances: Optional[Dict[str, Any]] = None

    def training_samples(self, choose: Choose, packing: str = 'sequences') -> List[Sample]:
        return [self.validation_sample()]

    def validation_sample(self) -> Sample:
        return list(self.messages), list(self.images)

    def prompts(self) -> List[Prompt]:
        return [Prompt(list(self.messages[:turn]), list(self.images),
                       TurnReference(self.id, turn, message['content'], len(self.images)))
                for turn, message in enumerate(self.messages) if message['role'] == 'assistant']

    def corpus(self) -> Iterator[str]:
        return (message['content'] for message in self.messages)


@dataclass(eq=False)  # holds an image tensor: compared by identity
class ImageObjects:
    """An image with its annotated objects and no text (a COCO instances file): what the cell tagger learns from."""
    image: Any
    image_id: int
    instances: Dict[str, Any]
