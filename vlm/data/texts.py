"""The texts of image-text datasets, read from their annotations (no image is opened): what a tokenizer is trained
on. Each dataset gives its records without images (`text_records`); each record gives its texts (`corpus`)."""
from __future__ import annotations

from itertools import chain
from typing import Iterator, List, Protocol, runtime_checkable

from torch.utils.data import ConcatDataset, Dataset

from vlm.language.prompts import prompt_words
from vlm.language.records import ImageTextRecord

from .instance_tags import WithInstances


@runtime_checkable
class HasTextRecords(Protocol):
    """An image-text dataset whose records can be listed without opening an image."""

    def text_records(self) -> Iterator[ImageTextRecord]: ...


def dataset_parts(dataset: Dataset) -> List[Dataset]:
    """The datasets inside `dataset`: itself, or the parts of a ConcatDataset, unwrapped from `WithInstances`."""
    if isinstance(dataset, ConcatDataset):
        return [part for child in dataset.datasets for part in dataset_parts(child)]
    if isinstance(dataset, WithInstances):
        return dataset_parts(dataset.dataset)
    return [dataset]


def dataset_texts(dataset: Dataset) -> Iterator[str]:
    """The template words, then every record's texts in prompt form (captions, questions with their answers,
    conversation messages), part by part."""
    parts = dataset_parts(dataset)
    for part in parts:
        if not isinstance(part, HasTextRecords):
            raise TypeError(f'no texts known for a {type(part).__name__} dataset: it needs a text_records() method')
    return chain(prompt_words(), (text for part in parts for record in part.text_records() for text in record.corpus()))
