"""`VisionLanguageCollator`: dataset records -> model inputs, run by the DataLoader workers (nanoVLM's pattern), so
the training step receives tensors and only computes.

Records are what vlm's image-text datasets return: a caption record `{'image', 'captions', 'image_id'}`, a VQA
record `{'image', 'question', 'answers', 'answer', 'answer_type', 'question_id', 'image_id'}`, a VQA record grouped
by image `{'image', 'image_id', 'qa': [...]}`, or a conversation `{'images': [...], 'conversations': [...], 'id'}`
(LLaVA's format). Skipped samples are dropped and counted.
"""
from __future__ import annotations

import random
from typing import Any, Dict, List, Sequence, Tuple

from vlm.errors import split_skipped

from .chat import Message
from .processor import VisionLanguageProcessor
from .prompts import caption_conversation, vqa_conversation

PACKINGS = ('sequences', 'turns')
Sample = Tuple[List[Message], List[Any]]  # (conversation, its images)


def has_text(record: Dict[str, Any]) -> bool:
    """Whether a record has something to say (captions, questions or a conversation), not just objects."""
    return any(record.get(key) is not None for key in ('conversations', 'captions', 'qa', 'question'))


class VisionLanguageCollator:
    """A list of records -> {'inputs': model inputs with labels, 'records': count, 'skipped': counts by reason}, and
    for evaluation also 'generation_inputs' (left-padded prompts) and 'targets' (what each prompt is scored
    against: 'captions' / 'answers' / 'answer_type' with their ids, or a conversation turn's 'reference').
    Records with objects and no text give 'tag_inputs' instead: pixel_values with their tag targets.

    training: learn `texts_per_image` of a record's captions or grouped questions (0: all), drawn at random, each
        image encoded once for all of them. packing: 'sequences' (one sequence per text) or 'turns' (all the
        chosen questions of an image as one multi-turn conversation: the image and the template's wrapping once,
        about 2.5x fewer tokens for five questions). Captions stay one sequence each: packed, a later caption of
        an image could copy the earlier ones instead of looking at it. Evaluation uses each record's first
        caption / question, and every assistant turn of a conversation (`prompts`).
    """

    def __init__(self, processor: VisionLanguageProcessor, training: bool, texts_per_image: int = 1,
                 packing: str = 'sequences', truncation: bool = False) -> None:
        if texts_per_image < 0:
            raise ValueError(f"texts_per_image must be >= 0 (0: all of an image's texts), got {texts_per_image}")
        if packing not in PACKINGS:
            raise ValueError(f'packing must be one of {PACKINGS}, got {packing!r}')
        self.processor, self.training = processor, training
        self.texts_per_image, self.packing, self.truncation = texts_per_image, packing, truncation

    # -- records -> conversations ------------------------------------------------------------------------------
    def _chosen(self, items: List[Any]) -> List[Any]:
        if not self.training:
            return items[:1]
        count = self.texts_per_image or len(items)
        return random.sample(items, min(count, len(items)))

    def training_samples(self, record: Dict[str, Any]) -> List[Sample]:
        """The conversations one training record teaches, with their images."""
        if 'conversations' in record:
            return [(record['conversations'], list(record['images']))]
        image = record['image']
        if record.get('captions') is not None:
            return [(caption_conversation(caption), [image]) for caption in self._chosen(record['captions'])]
        pairs = record['qa'] if record.get('qa') is not None else [record]
        chosen = self._chosen(pairs)
        if self.packing == 'turns':
            return [(vqa_conversation([qa['question'] for qa in chosen], [qa['answer'] for qa in chosen]), [image])]
        return [(vqa_conversation([qa['question']], [qa['answer']]), [image]) for qa in chosen]

    @staticmethod
    def prompts(record: Dict[str, Any]) -> List[Tuple[Sample, Dict[str, Any]]]:
        """What the model is asked about a record at evaluation, with what each answer is scored against: caption
        it, answer its (first) question, or, for a conversation, answer each assistant turn given the turns before
        it (the references' history, as a multi-turn benchmark scores each turn)."""
        if 'conversations' in record:
            messages = list(record['conversations'])
            return [((messages[:turn], list(record['images'])),
                     {'id': record.get('id'), 'turn': turn, 'reference': message['content'],
                      'images': len(record['images'])})
                    for turn, message in enumerate(messages) if message['role'] == 'assistant']
        if record.get('captions') is not None:
            return [((caption_conversation(), [record['image']]),
                     {'image_id': int(record['image_id']), 'captions': list(record['captions'])})]
        first = record['qa'][0] if record.get('qa') is not None else record
        return [((vqa_conversation([first['question']]), [record['image']]),
                 {'question_id': int(first['question_id']), 'answers': list(first['answers']),
                  'answer_type': first.get('answer_type', '')})]

    # -- batches -----------------------------------------------------------------------------------------------
    def __call__(self, records: Sequence[Any]) -> Dict[str, Any]:
        usable, skipped = split_skipped(records)
        batch: Dict[str, Any] = {'records': len(usable), 'skipped': skipped}
        tagged = [record for record in usable if not has_text(record)]
        if tagged:
            images = [record['image'] for record in tagged]
            centres, labels = self.processor.tag_targets([record['instances'] for record in tagged])
            batch['tag_inputs'] = {'pixel_values': self.processor.pixel_values(images), 'tag_centres': centres,
                                   'tag_labels': labels}
        usable = [record for record in usable if has_text(record)]
        if not usable:
            return batch
        instances = {id(record['image']): record['instances'] for record in usable if 'instances' in record}
        samples = [sample for record in usable for sample in
                   (self.training_samples(record) if self.training else [self._evaluation_sample(record)])]
        conversations, images = zip(*samples)
        batch['inputs'] = dict(self.processor.batch_conversations(
            conversations, images, padding_side='right', truncation=self.truncation, share_images=True,
            instances=instances or None))
        if not self.training:
            prompts, targets = zip(*[prompt for record in usable for prompt in self.prompts(record)])
            messages, prompt_images = zip(*prompts)
            batch['generation_inputs'] = dict(self.processor.batch_conversations(
                messages, prompt_images, add_generation_prompt=True, padding_side='left',
                instances=instances or None))
            batch['targets'] = list(targets)
        return batch

    def _evaluation_sample(self, record: Dict[str, Any]) -> Sample:
        """The first text of a record, with its answer (for the validation loss)."""
        if 'conversations' in record:
            return record['conversations'], list(record['images'])
        if record.get('captions') is not None:
            return caption_conversation(record['captions'][0]), [record['image']]
        first = record['qa'][0] if record.get('qa') is not None else record
        return vqa_conversation([first['question']], [first['answer']]), [record['image']]

