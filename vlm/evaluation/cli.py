"""`vlm evaluate-coco`: COCO mAP of a results JSON against a ground-truth JSON."""
from __future__ import annotations

import argparse
import json
import sys

from vlm.evaluation.coco_eval import BACKENDS, evaluate_coco
from vlm.evaluation.coco_results import IOU_TYPES, CocoEvalError

PROG = 'vlm evaluate-coco'


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description='COCO mAP of a results JSON: prints the standard COCOeval table of 12 stats.')
    parser.add_argument('--gt', required=True, help='ground-truth COCO dataset JSON (images, categories, annotations)')
    parser.add_argument('--predictions', required=True,
                        help='COCO results JSON: a list of {image_id, category_id, score, bbox | segmentation}')
    parser.add_argument('--iou-type', choices=IOU_TYPES, default='bbox', help='what to match (default: bbox)')
    parser.add_argument('--backend', choices=BACKENDS, default='pycocotools',
                        help='evaluation library (default: pycocotools); faster-coco-eval is ~5x faster, '
                             'same stats (AP to 1e-15)')
    parser.add_argument('--json', metavar='OUT.json', help='also write the 12 stats as a JSON object here')
    return parser


def main(argv: list[str]) -> int:
    """Run `vlm evaluate-coco` on `argv` (the arguments after the subcommand); 1 on bad input."""
    args = _parser().parse_args(argv)
    try:
        stats = evaluate_coco(args.gt, args.predictions, args.iou_type, args.backend)
        if args.json:
            with open(args.json, 'w') as file:
                json.dump(stats.as_dict(), file, indent=2)
                file.write('\n')
    except (CocoEvalError, OSError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    print(stats.table, end='')
    return 0
