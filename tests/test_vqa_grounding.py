"""The grounding check: a model that answers from the question alone scores the same with a wrong image; one that
reads the image loses what it read."""
from pathlib import Path

from vlm.data import VqaV2
from vlm.data.shapes import generate_shapes
from vlm.evaluation.grounding import derangement, grounding


def test_derangement_moves_every_scene_to_another():
    ids = [5, 3, 3, 9, 1, 7]
    moved = derangement(ids)
    assert sorted(moved) == sorted(set(ids)) and sorted(moved.values()) == sorted(set(ids))
    assert all(moved[i] != i for i in moved)


class _Blind:
    """Answers every question with its most common answer on these val questions: priors only."""

    def __init__(self, answers):
        self.answers = answers

    def ask(self, images, questions, max_new_tokens):
        return [self.answers[q] for q in questions]


class _Seeing:
    """Looks the answer up by (image, question): perfect perception."""

    def __init__(self, truth):
        self.truth = truth

    def ask(self, images, questions, max_new_tokens):
        return [self.truth.get((Path(i).name, q), 'no') for i, q in zip(images, questions)]


def test_grounding_tells_a_model_that_sees_from_one_that_guesses(tmp_path):
    root = generate_shapes(tmp_path / 'shapes', train_images=2, val_images=12, image_size=64,
                           classification_images_per_class=0, classification_val_images_per_class=0, workers=1)
    dataset = VqaV2(root / 'images' / 'val', root / 'annotations' / 'v2_OpenEnded_shapes_val_questions.json',
                    root / 'annotations' / 'v2_shapes_val_annotations.json', image_filename='{image_id:012d}.png')
    records = [dataset.question(i) for i in range(len(dataset.questions))]
    truth = {(dataset.image_path(r.image_id).name, r.question): r.answers[0] for r in records}
    common = {}
    for r in records:
        common.setdefault(r.question, []).append(r.answers[0])
    blind = grounding(_Blind({q: max(set(a), key=a.count) for q, a in common.items()}), dataset)
    assert all(abs(value) < 1e-9 for value in blind['difference'].values())
    answers = {}
    seeing = grounding(_Seeing(truth), dataset, answers_out=answers)
    assert seeing['true']['vqa_acc'] > 0.99
    assert answers['true'] == {r.question_id: r.answers[0] for r in records}  # each pass's answers kept
    assert set(answers['shuffled']) == set(answers['true'])
    assert seeing['difference']['vqa_acc'] > 0.2
