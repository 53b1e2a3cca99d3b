"""Does a VQA model look at the image? Its VQA accuracy with each question's own image against the same questions
asked about another scene (`derangement`: no scene keeps its own), per answer type.

A model that answers from the question alone (priors) scores the same either way; one that sees loses what it read
when the image is wrong. The command line: `python -m benchmarks.experiments.vqa_grounding`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List, Optional

from .vqa_accuracy import vqa_accuracy

if TYPE_CHECKING:
    from vlm.data import VqaV2
    from vlm.data.instance_tags import InstanceIndex
    from vlm.language.inference import VisionLanguagePredictor


def derangement(image_ids: List[int]) -> Dict[int, int]:
    """Each image id -> another one (the distinct ids shifted by half their number): no scene keeps its own."""
    distinct = sorted(set(image_ids))
    shift = max(len(distinct) // 2, 1)
    return {image: distinct[(k + shift) % len(distinct)] for k, image in enumerate(distinct)}


def grounding(predictor: VisionLanguagePredictor, dataset: VqaV2, limit: Optional[int] = None,
              max_new_tokens: int = 4, objects: Optional[InstanceIndex] = None,
              answers_out: Optional[Dict[str, Dict[int, str]]] = None) -> Dict[str, Dict[str, float]]:
    """{'true': accuracies, 'shuffled': accuracies, 'difference': true - shuffled} per answer type. predictor:
    anything with `VisionLanguagePredictor.ask`. objects: the images' instances, for a model whose tags come from
    annotations (the oracle): they go with the image shown. answers_out: filled with each pass's answers by
    question id ({'true': {...}, 'shuffled': {...}}), to study which questions fail."""
    records = [dataset.question(i) for i in range(len(dataset.questions))][:limit]
    other = derangement([r.image_id for r in records])
    answers = {r.question_id: r.answers for r in records}
    types = {r.question_id: r.answer_type for r in records}
    scores = {}
    for name, image_of in (('true', lambda i: i), ('shuffled', other.__getitem__)):
        images = [str(dataset.image_path(image_of(r.image_id))) for r in records]
        questions = [r.question for r in records]
        if objects is None:
            texts = predictor.ask(images, questions, max_new_tokens=max_new_tokens)
        else:
            texts = predictor.ask(images, questions, instances=[objects(image_of(r.image_id)) for r in records],
                                  max_new_tokens=max_new_tokens)
        given = {r.question_id: t for r, t in zip(records, texts)}
        if answers_out is not None:
            answers_out[name] = given
        scores[name] = vqa_accuracy(answers, given, types)
    scores['difference'] = {key: scores['true'][key] - scores['shuffled'][key] for key in scores['true']}
    return scores
