"""Caption scores, VQA accuracy and conversation-turn accuracy as torchmetrics `Metric`s: generated texts in (with
their ids and references), the same numbers as `evaluate_captions` / `vqa_accuracy` out, every process's predictions
gathered by torchmetrics (each id counted once). `TEXT_METRICS`: the metric of each kind of record's reference, by
name."""
from __future__ import annotations

from typing import Any, Callable, Dict, Sequence

from torch.nn import ModuleDict
from torchmetrics import Metric

from .caption_scores import evaluate_captions
from .gathered_metric import GatheredRecordsMetric
from .vqa_accuracy import normalize_answer, vqa_accuracy

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


class ConversationAccuracy(GatheredRecordsMetric):
    """update(keys, answers, references, image_counts) -> compute(): {'chat_acc': the fraction of assistant turns
    answered exactly as the reference after VQA normalisation (case, punctuation, articles, number words),
    'chat_acc/<n>_images': the same over the turns of dialogues with n images, 'chat_acc/<type>' over the turns
    whose reference is of VQAv2's answer type yes/no, number or other (`reference_answer_type`), and
    'chat_acc/<type>/<n>_images' when dialogues have different numbers of images}. keys: (record id, turn)."""

    def update(self, keys: Sequence[Any], answers: Sequence[str], references: Sequence[str],
               image_counts: Sequence[int]) -> None:
        for key, answer, reference, images in zip(keys, answers, references, image_counts):
            self.records.append((tuple(key), answer, reference, int(images)))

    def compute(self) -> Dict[str, float]:
        records = list(self.unique_records().values())
        if not records:
            return {}
        correct = [(normalize_answer(answer) == normalize_answer(reference), images)
                   for _, answer, reference, images in records]
        scores = {'chat_acc': sum(hit for hit, _ in correct) / len(correct)}
        counts = sorted({images for _, images in correct})
        for count in counts:
            hits = [hit for hit, images in correct if images == count]
            scores[f'chat_acc/{count}_images'] = sum(hits) / len(hits)
        kinds = [reference_answer_type(reference) for _, _, reference, _ in records]
        for kind in sorted(set(kinds)):
            hits = [hit for (hit, _), other in zip(correct, kinds) if other == kind]
            scores[f'chat_acc/{kind}'] = sum(hits) / len(hits)
            for count in counts if len(counts) > 1 else ():
                hits = [hit for (hit, images), other in zip(correct, kinds) if other == kind and images == count]
                if hits:
                    scores[f'chat_acc/{kind}/{count}_images'] = sum(hits) / len(hits)
        return scores


def reference_answer_type(reference: str) -> str:
    """VQAv2's answer type of a reference answer: 'yes/no', 'number' (digits after normalisation) or 'other'."""
    answer = normalize_answer(reference)
    if answer in ('yes', 'no'):
        return 'yes/no'
    return 'number' if answer.isdigit() else 'other'


# The metric that scores each kind of `vlm.language.records.Reference`, by its `metric` name. A new record kind
# scored another way registers its own here (name -> a zero-argument factory) before the task is built.
TEXT_METRICS: Dict[str, Callable[[], Metric]] = {
    'captions': CaptionScores,
    'vqa': VqaAccuracy,
    'conversations': ConversationAccuracy,
}


def build_text_metrics() -> ModuleDict:
    """A fresh instance of every registered text metric, by name (a ModuleDict: they move with the task)."""
    return ModuleDict({name: make() for name, make in TEXT_METRICS.items()})
