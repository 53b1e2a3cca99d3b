"""The texts of caption and VQA datasets, read from their annotations (no image is opened): what a tokenizer is
trained on."""
from __future__ import annotations

from typing import Iterator, List

from torch.utils.data import ConcatDataset, Dataset

from vlm.language.prompts import training_corpus

from .captions import CocoCaptions
from .vqa import VqaV2


def dataset_parts(dataset: Dataset) -> List[Dataset]:
    """The CocoCaptions / VqaV2 datasets inside `dataset` (itself, or the parts of a ConcatDataset)."""
    if isinstance(dataset, ConcatDataset):
        return [part for child in dataset.datasets for part in dataset_parts(child)]
    return [dataset]


def dataset_texts(dataset: Dataset) -> Iterator[str]:
    """Every caption, and every VQA question with its answer, as prompt-formatted training texts."""
    captions: List[str] = []
    questions: List[str] = []
    answers: List[str] = []
    for part in dataset_parts(dataset):
        if isinstance(part, CocoCaptions):
            captions += [text for image_id in part.image_ids for text in part.captions(image_id)]
        elif isinstance(part, VqaV2):
            records = [part.record(k) for k in range(len(part.questions))]
            questions += [record['question'] for record in records]
            answers += [record['answer'] for record in records]
        else:
            raise TypeError(f'no texts known for a {type(part).__name__} dataset')
    return training_corpus(captions, questions, answers)
