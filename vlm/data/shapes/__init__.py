"""The embedded synthetic shapes dataset, written in the real on-disk formats of COCO, VQAv2, ImageNet and
label-map segmentation so that the readers of the real datasets read it.

Layout under the root (`shapes_paths(root, split)` gives a split's paths; SPLIT_FILES the templates):

    shapes_meta.json                                     written last: its presence marks a complete dataset
    images/{split}/000000000001.png                      RGB; COCO file_name '{image_id:012d}.png'
    segmentation/{split}/000000000001.png                mode 'L' label map: 0 background, 1..K SEGMENTATION_CLASSES
    annotations/instances_{split}.json                   COCO instances (RLE masks, extra 'color' per annotation)
    annotations/captions_{split}.json                    COCO captions (5 per image, at least 4)
    annotations/v2_OpenEnded_shapes_{split}_questions.json   VQAv2 questions (5 per image)
    annotations/v2_shapes_{split}_annotations.json            VQAv2 annotations (10 identical answers)
    annotations/conversations_{split}.json               LLaVA conversations: each image's questions as one dialogue,
                                                         and two-image comparisons (`shapes.conversations`)
    classification/{split}/<class>/<class>_000001.png    ImageFolder tree, classes = CLASSIFICATION_CLASSES

Image ids: train 1.., val 1000001.. (IMAGE_ID_OFFSETS); VQA question_id = image_id * 100 + k, k = 1..5.
"""
from .constants import CATEGORIES, CATEGORY_IDS, CATEGORY_NAMES, CLASSIFICATION_CLASSES, COLOURS, SEGMENTATION_CLASSES
from .generate import generate_shapes
from .paths import IMAGE_ID_OFFSETS, META_FILE, SPLIT_FILES, SPLITS, image_file_name, shapes_paths

__all__ = [
    'CATEGORIES', 'CATEGORY_IDS', 'CATEGORY_NAMES', 'CLASSIFICATION_CLASSES', 'COLOURS', 'IMAGE_ID_OFFSETS',
    'META_FILE', 'SEGMENTATION_CLASSES', 'SPLITS', 'SPLIT_FILES', 'generate_shapes', 'image_file_name',
    'shapes_paths',
]
