"""Caption scores and VQA accuracy as torchmetrics `Metric`s: generated texts in (with their ids and references),
the same numbers as `evaluate_captions` / `vqa_accuracy` out, every process's predictions gathered by torchmetrics
(each id counted once)."""
from __future__ import annotations

from typing import Any, Dict, Sequence

from .caption_scores import evaluate_captions
from .gathered_metric import GatheredRecordsMetric
from .vqa_accuracy import vqa_accuracy

CAPTION_SCORES = ('BLEU4', 'CIDEr', 'ROUGE_L')


class CaptionScores(GatheredRecordsMetric):
    """update(image_ids, captions, references) -> compute(): {'BLEU4', 'CIDEr', 'ROUGE_L'} (pycocoevalcap's
    scorers over the images seen; CIDEr's document frequencies come from their references)."""

    def update(self, image_ids: Sequence[int], captions: Sequence[str], references: Sequence[Sequence[str]]) -> None:
        for image_id, caption, refs in zip(image_ids, captions, references):
            self.records.append((int(image_id), caption, list(refs)))

    def compute(self) -> Dict[str, float]:
        records = self.unique_records()
        if not records:
            return {}
        scores = evaluate_captions({key: refs for key, _, refs in records.values()},
                                   {key: caption for key, caption, _ in records.values()})
        return {name: scores[name] for name in CAPTION_SCORES}

    def examples(self, count: int = 1) -> Sequence[Any]:
        """(image id, caption, references) of the first `count` images seen."""
        return list(self.unique_records().values())[:count]


class VqaAccuracy(GatheredRecordsMetric):
    """update(question_ids, answers, human_answers, answer_types) -> compute(): {'vqa_acc', 'vqa_acc/<type>'} as
    the official VQAv2 evaluation computes them."""

    def update(self, question_ids: Sequence[int], answers: Sequence[str], human_answers: Sequence[Sequence[str]],
               answer_types: Sequence[str]) -> None:
        for question_id, answer, humans, kind in zip(question_ids, answers, human_answers, answer_types):
            self.records.append((int(question_id), answer, list(humans), kind))

    def compute(self) -> Dict[str, float]:
        records = self.unique_records()
        if not records:
            return {}
        return vqa_accuracy({key: humans for key, _, humans, _ in records.values()},
                            {key: answer for key, answer, _, _ in records.values()},
                            {key: kind for key, _, _, kind in records.values() if kind})
