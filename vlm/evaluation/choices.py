"""The options of COCO evaluation, importable without pycocotools or torch (the `vlm evaluate-coco` parser)."""
IOU_TYPES = ('bbox', 'segm')
BACKENDS = ('pycocotools', 'faster-coco-eval')
