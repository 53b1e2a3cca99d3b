"""Where the shapes dataset keeps each file, relative to its root."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Union

SPLITS = ('train', 'val')
META_FILE = 'shapes_meta.json'

# per split: relative path templates, formatted with split='train' or 'val'
SPLIT_FILES: Dict[str, str] = {
    'images': 'images/{split}',
    'instances': 'annotations/instances_{split}.json',
    'captions': 'annotations/captions_{split}.json',
    'vqa_questions': 'annotations/v2_OpenEnded_shapes_{split}_questions.json',
    'vqa_annotations': 'annotations/v2_shapes_{split}_annotations.json',
    'conversations': 'annotations/conversations_{split}.json',
    'segmentation': 'segmentation/{split}',
    'classification': 'classification/{split}',
}

# image ids are unique across splits: train 1.., val 1000001..
IMAGE_ID_OFFSETS: Dict[str, int] = {'train': 0, 'val': 1_000_000}


def shapes_paths(root: Union[str, Path], split: str) -> Dict[str, Path]:
    """The paths of one split's directories and files, keyed like SPLIT_FILES."""
    if split not in SPLITS:
        raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
    return {key: Path(root) / template.format(split=split) for key, template in SPLIT_FILES.items()}


def image_id(split: str, index: int) -> int:
    """The COCO image id of image `index` (0-based) of `split`."""
    return IMAGE_ID_OFFSETS[split] + index + 1


def image_file_name(image_id: int) -> str:
    """'000000000001.png': the file name of an image and of its label map."""
    return f'{image_id:012d}.png'


def classification_file_name(class_name: str, number: int) -> str:
    """'circle_000001.png' (number starts at 1)."""
    return f'{class_name}_{number:06d}.png'
