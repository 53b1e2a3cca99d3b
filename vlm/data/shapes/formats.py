"""The JSON documents in the real COCO (instances, captions) and VQAv2 (questions, annotations) formats."""
from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
from pycocotools import mask as mask_utils

from .constants import CATEGORIES, CATEGORY_IDS
from .geometry import ShapeObject
from .vqa import QA

# fixed strings only: the same arguments must give byte-identical files
INFO: Dict[str, Any] = {
    'description': 'vlm synthetic shapes dataset', 'url': '', 'version': '1.0', 'year': 2025,
    'contributor': 'vlm.data.shapes', 'date_created': '2025/01/01',
}
LICENSES: List[Dict[str, Any]] = [
    {'id': 1, 'name': 'Apache License 2.0', 'url': 'https://www.apache.org/licenses/LICENSE-2.0'},
]
VQA_LICENSE: Dict[str, str] = {'name': LICENSES[0]['name'], 'url': LICENSES[0]['url']}
VQA_ANSWERS = 10  # answers per question, as in VQAv2


def coco_image(image_id: int, file_name: str, image_size: int) -> Dict[str, Any]:
    """A COCO 'images' entry."""
    return {'id': image_id, 'file_name': file_name, 'width': image_size, 'height': image_size}


def instance_annotation(mask: np.ndarray, shape: ShapeObject) -> Dict[str, Any]:
    """A COCO instance annotation of a visible mask (S, S) bool, without 'id' and 'image_id': RLE
    segmentation, tight bbox [x, y, w, h] of the mask, area = its pixel count, plus the extra 'color' name."""
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {
        'category_id': CATEGORY_IDS[shape.category],
        'segmentation': {'size': [int(s) for s in rle['size']], 'counts': rle['counts'].decode('ascii')},
        'bbox': [float(x0), float(y0), float(xs.max() - x0 + 1), float(ys.max() - y0 + 1)],
        'area': float(mask.sum()),
        'iscrowd': 0,
        'color': shape.colour,
    }


def coco_categories() -> List[Dict[str, Any]]:
    """COCO 'categories' entries: id, name, supercategory 'shape'."""
    return [{'id': c['id'], 'name': c['name'], 'supercategory': 'shape'} for c in CATEGORIES]


def coco_instances(images: List[Dict[str, Any]], annotations: List[Dict[str, Any]]) -> Dict[str, Any]:
    """A COCO instances file."""
    return {'info': INFO, 'licenses': LICENSES, 'images': images, 'annotations': annotations,
            'categories': coco_categories()}


def coco_captions(images: List[Dict[str, Any]], annotations: List[Dict[str, Any]]) -> Dict[str, Any]:
    """A COCO captions file; annotations are {'id', 'image_id', 'caption'}."""
    return {'info': INFO, 'licenses': LICENSES, 'images': images, 'annotations': annotations}


def vqa_questions(split: str, items: Sequence[Tuple[int, int, QA]]) -> Dict[str, Any]:
    """A VQAv2 Open-Ended questions file from (question_id, image_id, qa) triples."""
    questions = [{'question_id': qid, 'image_id': image_id, 'question': qa.question} for qid, image_id, qa in items]
    return {'info': INFO, 'task_type': 'Open-Ended', 'data_type': 'shapes', 'data_subtype': split,
            'license': VQA_LICENSE, 'questions': questions}


def vqa_annotations(split: str, items: Sequence[Tuple[int, int, QA]]) -> Dict[str, Any]:
    """A VQAv2 annotations file from (question_id, image_id, qa) triples; the 10 annotators all agree."""
    annotations = [{
        'question_id': qid, 'image_id': image_id, 'question_type': qa.question_type,
        'answer_type': qa.answer_type, 'multiple_choice_answer': qa.answer,
        'answers': [{'answer': qa.answer, 'answer_confidence': 'yes', 'answer_id': k}
                    for k in range(1, VQA_ANSWERS + 1)],
    } for qid, image_id, qa in items]
    return {'info': INFO, 'license': VQA_LICENSE, 'data_type': 'shapes', 'data_subtype': split,
            'annotations': annotations}
