"""The texts of caption, VQA and conversation datasets, read from their annotations (no image is opened): what a tokenizer is
trained on."""
from __future__ import annotations

from itertools import chain
from typing import Iterator, List

from torch.utils.data import ConcatDataset, Dataset

from vlm.language.prompts import training_corpus

from .captions import CocoCaptions
from .conversations import LlavaConversations
from .instance_tags import InstanceImages, WithInstances
from .vqa import VqaV2


def dataset_parts(dataset: Dataset) -> List[Dataset]:
    """The CocoCaptions / VqaV2 / LlavaConversations datasets inside `dataset` (itself, or the parts of a ConcatDataset)."""
    if isinstance(dataset, ConcatDataset):
        return [part for child in dataset.datasets for part in dataset_parts(child)]
    if isinstance(dataset, WithInstances):
        return dataset_parts(dataset.dataset)
    return [dataset]


def dataset_texts(dataset: Dataset) -> Iterator[str]:
    """Every caption, every VQA question with its answer, as prompt-formatted training texts, and every message of
    the conversations."""
    captions: List[str] = []
    questions: List[str] = []
    answers: List[str] = []
    messages: List[str] = []
    for part in dataset_parts(dataset):
        if isinstance(part, CocoCaptions):
            captions += [text for image_id in part.image_ids for text in part.captions(image_id)]
        elif isinstance(part, VqaV2):
            records = [part.record(k) for k in range(len(part.questions))]
            questions += [record['question'] for record in records]
            answers += [record['answer'] for record in records]
        elif isinstance(part, InstanceImages):
            continue  # images and their objects: no text
        elif isinstance(part, LlavaConversations):
            messages += [message['content'] for record in part.records for message in record.messages]
        else:
            raise TypeError(f'no texts known for a {type(part).__name__} dataset')
    return chain(training_corpus(captions, questions, answers), messages)
