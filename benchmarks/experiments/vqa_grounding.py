"""Does the model look at the image? VQA accuracy with each question's own image against the same questions asked
about another scene (a fixed derangement of the val images), per answer type.

A model that answers from the question alone (priors: 'yes' half the time, the commonest count) scores the same
either way; one that sees loses most on 'other' (colour, shape) and 'yes/no' when the image is wrong.

    python -m benchmarks.experiments.vqa_grounding --ckpt runs/shapes_vqa_smollm2/version_0/checkpoints/last.ckpt
    python -m benchmarks.experiments.vqa_grounding --model runs/export/shapes_vqa_smollm2 [--limit 500] \\
        [--json out.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

from vlm.data import VqaV2, ensure_shapes
from vlm.data.instance_tags import InstanceIndex
from vlm.evaluation.grounding import grounding
from vlm.language.inference import VisionLanguagePredictor

SHAPES = Path('data/shapes')


def load_predictor(model: Optional[str], ckpt: Optional[str], batch_size: int) -> VisionLanguagePredictor:
    if model:
        return VisionLanguagePredictor.from_pretrained(model, batch_size=batch_size)
    from vlm.tasks import VisionLanguageTask

    task = VisionLanguageTask.load_from_checkpoint(ckpt)
    return VisionLanguagePredictor(task.exportable_model(), task.processor, batch_size=batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--model', help='a folder written by `vlm export`')
    source.add_argument('--ckpt', help='a VisionLanguageTask checkpoint of `vlm fit`')
    parser.add_argument('--root', type=Path, default=SHAPES, help='the shapes dataset (generated when missing)')
    parser.add_argument('--limit', type=int, default=None, help='score the first N val questions only')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--json', type=Path, help='also write the table here, and each answer of both passes beside '
                                                  'it (NAME.answers.json, by question id)')
    args = parser.parse_args()
    ensure_shapes(args.root)
    dataset = VqaV2(args.root / 'images' / 'val', args.root / 'annotations' / 'v2_OpenEnded_shapes_val_questions.json',
                    args.root / 'annotations' / 'v2_shapes_val_annotations.json', image_filename='{image_id:012d}.png')
    predictor = load_predictor(args.model, args.ckpt, args.batch_size)
    tags = predictor.processor.tags
    objects = (InstanceIndex(args.root / 'annotations' / 'instances_val.json')
               if tags is not None and tags.source == 'annotations' else None)
    answers: dict = {}
    scores = grounding(predictor, dataset, args.limit, objects=objects, answers_out=answers)
    keys = list(scores['true'])
    print(f"{'':12}" + ''.join(f'{key:>16}' for key in keys))
    for name, values in scores.items():
        print(f'{name:12}' + ''.join(f'{values[key]:>16.3f}' for key in keys))
    if args.json:
        args.json.write_text(json.dumps(scores, indent=2) + '\n')
        args.json.with_suffix('.answers.json').write_text(json.dumps(answers, indent=1) + '\n')


if __name__ == '__main__':
    main()
