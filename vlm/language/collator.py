"""`VisionLanguageCollator`: dataset records -> model inputs, run by the DataLoader workers (nanoVLM's pattern), so
the training step receives tensors and only computes.

Records are `vlm.language.records` objects: an `ImageTextRecord` (caption, VQA, conversation, or any new kind) says
what it teaches and what it is asked; an `ImageObjects` record (an image with its objects, no text) gives the cell
tagger's targets. Skipped samples are dropped and counted.
"""
from __future__ import annotations

from typing import Any, Dict, Sequence

from vlm.errors import split_skipped

from .processor import VisionLanguageProcessor
from .records import Choose, ImageObjects, ImageTextRecord, check_packing


class VisionLanguageCollator:
    """A list of records -> {'inputs': model inputs with labels, 'records': count, 'skipped': counts by reason}, and
    for evaluation also 'generation_inputs' (left-padded prompts) and 'targets' (each prompt's `Reference`: what its
    answer is scored against). `ImageObjects` records give 'tag_inputs' instead: pixel_values with their tag
    targets.

    training: learn `texts_per_image` of a record's texts (captions, or the questions of a grouped VQA record; 0:
        all), drawn at random, each image encoded once for all of them. packing: 'sequences' (one sequence per
        text) or 'turns' (a VQA record's chosen questions as one multi-turn conversation: the image and the
        template's wrapping once, about 2.5x fewer tokens for five questions). Evaluation uses each record's
        `validation_sample` for the loss and its `prompts` for generation.
    """

    def __init__(self, processor: VisionLanguageProcessor, training: bool, texts_per_image: int = 1,
                 packing: str = 'sequences', truncation: bool = False) -> None:
        check_packing(texts_per_image, packing)
        self.processor, self.training = processor, training
        self.choose, self.packing, self.truncation = Choose(texts_per_image), packing, truncation

    def __call__(self, records: Sequence[Any]) -> Dict[str, Any]:
        usable, skipped = split_skipped(records)
        batch: Dict[str, Any] = {'records': len(usable), 'skipped': skipped}
        unknown = {type(record).__name__ for record in usable
                   if not isinstance(record, (ImageTextRecord, ImageObjects))}
        if unknown:
            raise TypeError(f'the vision-language collator takes vlm.language.records objects, got {sorted(unknown)}')
        tagged = [record for record in usable if isinstance(record, ImageObjects)]
        if tagged:
            centres, labels = self.processor.tag_targets([record.instances for record in tagged])
            batch['tag_inputs'] = {'pixel_values': self.processor.pixel_values([record.image for record in tagged]),
                                   'tag_centres': centres, 'tag_labels': labels}
        usable = [record for record in usable if isinstance(record, ImageTextRecord)]
        if not usable:
            return batch
        instances = {id(record.images[0]): record.instances for record in usable  # a one-image record's objects
                     if record.instances is not None and len(record.images) == 1}
        samples = [sample for record in usable for sample in
                   (record.training_samples(self.choose, self.packing) if self.training
                    else [record.validation_sample()])]
        conversations, images = zip(*samples)
        batch['inputs'] = dict(self.processor.batch_conversations(
            conversations, images, padding_side='right', truncation=self.truncation, share_images=True,
            instances=instances or None))
        if not self.training:
            prompts = [prompt for record in usable for prompt in record.prompts()]
            batch['generation_inputs'] = dict(self.processor.batch_conversations(
                [prompt.messages for prompt in prompts], [prompt.images for prompt in prompts],
                add_generation_prompt=True, padding_side='left', instances=instances or None))
            batch['targets'] = [prompt.reference for prompt in prompts]
        return batch
