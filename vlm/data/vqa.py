"""VQAv2 (official questions + annotations JSON) with the COCO images."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

from torch.utils.data import Dataset

from .coco_json import read_json, require
from .errors import DataError, SkipCounter, SkippedSample
from .images import load_image_tensor


class VqaV2(Dataset):
    """Item: {'image', 'question', 'answers' (10 strings; empty for a test split), 'answer'
    (multiple_choice_answer), 'answer_type', 'question_id', 'image_id'}.

    group_by_image: one item per image instead, {'image', 'image_id', 'qa': [one such record without the image,
    per question of that image]}, so an image is loaded (and, in training, encoded) once for all its questions.

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
        questions_file = Path(questions_file)
        questions = read_json(questions_file)
        require(questions, ('questions',), questions_file, 'top level')
        self.questions: List[Dict[str, Any]] = []
        for q in questions['questions']:
            require(q, ('question_id', 'image_id', 'question'), questions_file, f"question id {q.get('question_id', '?')}")
            self.questions.append(q)
        self.annotations: Dict[int, Dict[str, Any]] = {}
        if annotation_file is not None:
            annotation_file = Path(annotation_file)
            data = read_json(annotation_file)
            require(data, ('annotations',), annotation_file, 'top level')
            for ann in data['annotations']:
                require(ann, ('question_id', 'answers', 'multiple_choice_answer'), annotation_file,
                        f"annotation for question id {ann.get('question_id', '?')}")
                self.annotations[int(ann['question_id'])] = ann
            missing = [q['question_id'] for q in self.questions if int(q['question_id']) not in self.annotations]
            if missing:
                raise DataError(annotation_file, f'no annotation for {len(missing)} questions, e.g. {missing[:5]}',
                                field='question_id')
        self.group_by_image = group_by_image
        by_image: Dict[int, List[int]] = {}
        for i, question in enumerate(self.questions):
            by_image.setdefault(int(question['image_id']), []).append(i)
        self.image_questions: List[List[int]] = list(by_image.values())  # question indices, image by image

    def __len__(self) -> int:
        return len(self.image_questions) if self.group_by_image else len(self.questions)

    def image_path(self, image_id: int) -> Path:
        return self.images_dir / self.image_filename.format(image_id=image_id)

    def __getitem__(self, i: int) -> Union[Dict[str, Any], SkippedSample]:
        indices = self.image_questions[i] if self.group_by_image else [i]
        image_id = int(self.questions[indices[0]]['image_id'])
        try:
            image = load_image_tensor(self.image_path(image_id))
        except DataError as error:
            if not self.skip_bad_samples:
                raise
            return SkippedSample.of(error)
        if self.transform is not None:
            image = self.transform(image)
        if self.group_by_image:
            return {'image': image, 'image_id': image_id, 'qa': [self.record(k) for k in indices]}
        return {'image': image, **self.record(i)}

    def record(self, i: int) -> Dict[str, Any]:
        """Question i with its answers, without the image."""
        question = self.questions[i]
        ann = self.annotations.get(int(question['question_id']), {})
        return {
            'question': question['question'],
            'answers': [a['answer'] for a in ann.get('answers', [])],
            'answer': ann.get('multiple_choice_answer', ''),
            'answer_type': ann.get('answer_type', ''),
            'question_id': int(question['question_id']),
            'image_id': int(question['image_id']),
        }
