"""`vlm evaluate-coco`: COCO mAP of a results JSON against a ground-truth JSON; `vlm evaluate-captions`: BLEU,
CIDEr and ROUGE-L of COCO caption results; `vlm evaluate-vqa`: VQAv2 accuracy of VQA results."""
from __future__ import annotations

import argparse
import json
import sys

from typing import Callable, Dict

from vlm.data.errors import DataError
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


def _metrics_command(prog: str, argv: list[str], parser: argparse.ArgumentParser,
                     score: Callable[[argparse.Namespace], tuple[Dict[str, float], str]]) -> int:
    """Parse, score, print `name  value` lines (and what was scored), write --json; 1 on bad input."""
    from vlm.evaluation.caption_metrics import write_json

    args = parser.parse_args(argv)
    try:
        metrics, scored = score(args)
        if args.json:
            write_json(metrics, args.json)
    except (DataError, OSError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 1
    width = max(map(len, metrics))
    print(f"{scored}")
    for name, value in metrics.items():
        print(f"{name:<{width}}  {value:.4f}")
    return 0


def _common(parser: argparse.ArgumentParser, what: str) -> argparse.ArgumentParser:
    parser.add_argument('--allow-missing', action='store_true',
                        help=f'score only the {what} that have a prediction (default: every {what[:-1]} of the '
                             'ground truth needs one)')
    parser.add_argument('--json', metavar='OUT.json', help='also write the metrics as a JSON object here')
    return parser


def captions_main(argv: list[str]) -> int:
    """Run `vlm evaluate-captions` on `argv`; 1 on bad input."""
    from vlm.evaluation.caption_metrics import evaluate_captions, read_caption_references, read_caption_results

    parser = argparse.ArgumentParser(
        prog='vlm evaluate-captions',
        description='BLEU1-4, CIDEr and ROUGE_L of caption results (pycocoevalcap scorers, PTB tokenisation in '
                    'Python: no Java). METEOR and SPICE are not computed.')
    parser.add_argument('--gt', required=True, help='COCO captions JSON (images, annotations with caption)')
    parser.add_argument('--predictions', required=True,
                        help='COCO caption results JSON: a list of {"image_id": int, "caption": str}')
    _common(parser, 'images')

    def score(args: argparse.Namespace) -> tuple[Dict[str, float], str]:
        references = read_caption_references(args.gt)
        predictions = read_caption_results(args.predictions, references)
        metrics = evaluate_captions(references, predictions, args.allow_missing, source=args.predictions)
        return metrics, f"{len(predictions)} of {len(references)} images with captions scored"

    return _metrics_command('vlm evaluate-captions', argv, parser, score)


def vqa_main(argv: list[str]) -> int:
    """Run `vlm evaluate-vqa` on `argv`; 1 on bad input."""
    from vlm.evaluation.vqa_accuracy import read_vqa_annotations, read_vqa_results, vqa_accuracy

    parser = argparse.ArgumentParser(
        prog='vlm evaluate-vqa',
        description='VQAv2 accuracy of VQA results, overall and per answer type, as the official evaluation '
                    'computes it (fractions in [0, 1]).')
    parser.add_argument('--questions', required=True, help='VQAv2 questions JSON (v2_OpenEnded_*_questions.json)')
    parser.add_argument('--annotations', required=True, help='VQAv2 annotations JSON (v2_*_annotations.json)')
    parser.add_argument('--predictions', required=True,
                        help='VQAv2 results JSON: a list of {"question_id": int, "answer": str}')
    _common(parser, 'questions')

    def score(args: argparse.Namespace) -> tuple[Dict[str, float], str]:
        answers, answer_types = read_vqa_annotations(args.questions, args.annotations)
        predictions = read_vqa_results(args.predictions, answers)
        metrics = vqa_accuracy(answers, predictions, answer_types, args.allow_missing, source=args.predictions)
        return metrics, f"{len(predictions)} of {len(answers)} questions scored"

    return _metrics_command('vlm evaluate-vqa', argv, parser, score)
