"""VQAv2 (official questions + annotations JSON) with the COCO images: the one reader of the format (the dataset
and `vlm evaluate-vqa` share it), and the dataset."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

from vlm.errors import DataError
from vlm.io.images import load_image_tensor
from vlm.io.json_files import is_id, read_json, require
from vlm.language.records import Question, VqaRecord

from .skipping import SkipCounter, SkipsBadSamples


def read_vqa_questions(path: Union[str, Path]) -> List[Dict[str, Any]]:
    """The questions of a VQAv2 questions JSON, checked: each an object with an integer, unique question_id, an
    image_id and a question; else `DataError` naming the file and the record."""
    path = Path(path)
    data = read_json(path, 'questions')
    if not isinstance(data, dict):
        raise DataError(path, 'expected a JSON object with questions')
    require(data, ('questions',), path, 'top level')
    seen = set()
    for index, question in enumerate(data['questions']):
        if not isinstance(question, dict):
            raise DataError(path, 'expected an object', record=f'questions[{index}]')
        record = f"questions[{index}] (question_id={question.get('question_id', '?')!r})"
        require(question, ('question_id', 'image_id', 'question'), path, record)
        question_id = question['question_id']
        if not is_id(question_id):
            raise DataError(path, f'question id is not an integer: {question_id!r}', record=record,
                            field='question_id')
        if question_id in seen:
            raise DataError(path, f'duplicate question id {question_id}', record=record, field='question_id')
        seen.add(question_id)
    return data['questions']


def read_vqa_answers(path: Union[str, Path], questions: List[Dict[str, Any]],
                     questions_path: Union[str, Path] = 'questions') -> Dict[int, Dict[str, Any]]:
    """question id -> annotation of a VQAv2 annotations JSON, checked against `questions`: every question needs an
    annotation and every annotation a question (same image id); answers a non-empty list of {'answer': str}; an
    answer_type a string. A missing `multiple_choice_answer` is the most common human answer."""
    path = Path(path)
    data = read_json(path, 'annotations')
    if not isinstance(data, dict):
        raise DataError(path, 'expected a JSON object with annotations')
    require(data, ('annotations',), path, 'top level')
    image_of = {question['question_id']: question['image_id'] for question in questions}
    annotations: Dict[int, Dict[str, Any]] = {}
    for index, ann in enumerate(data['annotations']):
        if not isinstance(ann, dict):
            raise DataError(path, 'expected an object', record=f'annotations[{index}]')
        record = f"annotations[{index}] (question_id={ann.get('question_id', '?')!r})"
        require(ann, ('question_id', 'answers'), path, record)
        question_id = ann['question_id']
        if not is_id(question_id) or question_id not in image_of:
            raise DataError(path, f'unknown question id {question_id!r} (not in {questions_path})',
                            record=record, field='question_id')
        if question_id in annotations:
            raise DataError(path, f'duplicate question id {question_id}', record=record, field='question_id')
        if 'image_id' in ann and ann['image_id'] != image_of[question_id]:
            raise DataError(path, f"image id {ann['image_id']!r} but the question's is {image_of[question_id]!r}",
                            record=record, field='image_id')
        if not isinstance(ann['answers'], list) or not ann['answers']:
            raise DataError(path, 'expected a non-empty list of answers', record=record, field='answers')
        for position, answer in enumerate(ann['answers']):
            if not isinstance(answer, dict) or not isinstance(answer.get('answer'), str):
                raise DataError(path, f'answers[{position}] has no string answer: {answer!r}'[:200],
                                record=record, field='answers')
        if 'answer_type' in ann and not isinstance(ann['answer_type'], str):
            raise DataError(path, f"answer type is not a string: {ann['answer_type']!r}", record=record,
                            field='answer_type')
        annotations[question_id] = ann
    missing = [question_id for question_id in image_of if question_id not in annotations]
    if missing:
        raise DataError(path, f'no annotation for {len(missing)} questions of {questions_path}, e.g. {missing[:5]}',
                        field='question_id')
    return annotations


def read_vqa_annotations(questions_file: Union[str, Path], annotation_file: Union[str, Path]
                         ) -> Tuple[Dict[int, List[str]], Dict[int, str]]:
    """VQAv2 questions + annotations JSON as (question id -> human answers, question id -> answer type): the ground
    truth of `vlm evaluate-vqa`."""
    annotations = read_vqa_answers(annotation_file, read_vqa_questions(questions_file), questions_file)
    answers = {qid: [a['answer'] for a in ann['answers']] for qid, ann in annotations.items()}
    types = {qid: ann['answer_type'] for qid, ann in annotations.items() if 'answer_type' in ann}
    return answers, types


class VqaV2(SkipsBadSamples):
    """Item: a `VqaRecord` of the image ((3, H, W) uint8 after `transform`) and one `Question` (its text, the
    'answer' learnt (multiple_choice_answer), the human 'answers' (10 strings; empty for a test split), the
    'answer_type' and the ids).

    group_by_image: one item per image instead, with every question of that image, so an image is loaded (and, in
    training, encoded) once for all its questions.

    images_dir + image_filename: where an image id's file is, e.g. 'COCO_train2014_{image_id:012d}.jpg' for the
    2014 folders, '{image_id:012d}.jpg' for COCO 2017 folders, '{image_id:012d}.png' for shapes.
    annotation_file may be None (test-dev: questions only).
    """

    def __init__(
            self,
            images_dir: Union[str, Path],
            questions_file: Union[str, Path],
            annotation_file: Optional[Union[str, Path]] = None,
            image_filename: str = 'COCO_train2014_{image_id:012d}.jpg',
            transform: Optional[Callable] = None,
            skip_bad_samples: bool = False,
            group_by_image: bool = False,
    ) -> None:
        self.images_dir = Path(images_dir)
        self.image_filename = image_filename
        self.transform = transform
        self.skip_bad_samples = skip_bad_samples
        self.skipped = SkipCounter()
        self.questions: List[Dict[str, Any]] = read_vqa_questions(questions_file)
        self.annotations: Dict[int, Dict[str, Any]] = (
            read_vqa_answers(annotation_file, self.questions, questions_file) if annotation_file is not None else {})
        self.group_by_image = group_by_image
        by_image: Dict[int, List[int]] = {}
        for i, question in enumerate(self.questions):
            by_image.setdefault(int(question['image_id']), []).append(i)
        self.image_questions: List[List[int]] = list(by_image.values())  # question indices, image by image

    def __len__(self) -> int:
        return len(self.image_questions) if self.group_by_image else len(self.questions)

    def image_path(self, image_id: int) -> Path:
        return self.images_dir / self.image_filename.format(image_id=image_id)

    def read(self, i: int) -> VqaRecord:
        indices = self.image_questions[i] if self.group_by_image else [i]
        image_id = int(self.questions[indices[0]]['image_id'])
        image = load_image_tensor(self.image_path(image_id))
        if self.transform is not None:
            image = self.transform(image)
        return VqaRecord(image, image_id, [self.question(k) for k in indices])

    def question(self, i: int) -> Question:
        """Question i with its answers."""
        question = self.questions[i]
        ann = self.annotations.get(int(question['question_id']), {})
        answers = [a['answer'] for a in ann.get('answers', [])]
        default = Counter(answers).most_common(1)[0][0] if answers else ''
        return Question(question['question'], ann.get('multiple_choice_answer', default), answers,
                        ann.get('answer_type', ''), int(question['question_id']), int(question['image_id']))

    def text_records(self) -> Iterator[VqaRecord]:
        """One record per question, without its image (nothing is opened): what the tokenizer's corpus reads."""
        return (VqaRecord(None, int(q['image_id']), [self.question(k)]) for k, q in enumerate(self.questions))
