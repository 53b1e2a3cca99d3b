"""The shape categories, named colours and size ranges of the synthetic shapes dataset."""
from __future__ import annotations

from typing import Dict, List, Tuple

# COCO-style categories: ids deliberately not contiguous (like COCO's 1..90 with gaps). Names are in
# alphabetical order, so the category order, the segmentation ids 1..K and the ImageFolder class order
# (sorted directory names) are the same everywhere.
CATEGORIES: List[Dict[str, object]] = [
    {'id': 1, 'name': 'circle'},
    {'id': 3, 'name': 'cross'},
    {'id': 7, 'name': 'ring'},
    {'id': 12, 'name': 'square'},
    {'id': 18, 'name': 'star'},
    {'id': 25, 'name': 'triangle'},
]
CATEGORY_NAMES: List[str] = [str(c['name']) for c in CATEGORIES]
CATEGORY_IDS: Dict[str, int] = {str(c['name']): int(c['id']) for c in CATEGORIES}

# Saturated colours far apart in RGB (pairwise distance > 110); backgrounds are low-saturation greys.
COLOURS: Dict[str, Tuple[int, int, int]] = {
    'red': (220, 40, 40),
    'green': (40, 170, 60),
    'blue': (40, 80, 220),
    'yellow': (240, 215, 40),
    'purple': (160, 50, 210),
    'cyan': (40, 200, 210),
}

# label-map values: 0 = background, then 1..K in CATEGORIES order
SEGMENTATION_CLASSES: List[str] = ['background'] + CATEGORY_NAMES
SEGMENTATION_IDS: Dict[str, int] = {name: i for i, name in enumerate(SEGMENTATION_CLASSES)}

# ImageFolder classes: sorted directory names (equal to CATEGORY_NAMES, which are sorted)
CLASSIFICATION_CLASSES: List[str] = sorted(CATEGORY_NAMES)

MAX_OBJECTS = 5  # objects per instance image
EMPTY_FRACTION = 0.08  # instance images without objects
# object size (circumscribed diameter) as a fraction of the image side: 16..48 px at 128 px
INSTANCE_SIZE_RANGE = (0.125, 0.375)
CLASSIFICATION_SIZE_RANGE = (0.55, 0.85)  # 35..54 px at 64 px: large, for a ViT learning from scratch
MIN_VISIBLE_FRACTION = 0.4  # of an object's full area, after occlusion
MIN_VISIBLE_PIXELS = 30
