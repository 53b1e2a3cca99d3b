"""`vlm evaluate-coco`: COCO mAP of a results JSON against a ground-truth JSON; `vlm evaluate-captions`: BLEU,
CIDEr and ROUGE-L of COCO caption results; `vlm evaluate-vqa`: VQAv2 accuracy of VQA results."""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Dict, Sequence

from vlm.errors import DataError
from vlm.evaluation.choices import BACKENDS, IOU_TYPES
from vlm.io.json_files import write_json

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


def coco_main(argv: list[str]) -> int:
    """Run `vlm evaluate-coco` on `argv` (the arguments after the subcommand); 1 on bad input."""
    args = _parser().parse_args(argv)
    from vlm.evaluation.coco_eval import evaluate_coco
    from vlm.evaluation.coco_results import CocoEvalError
    from vlm.io.progress import progress_bar

    try:
        with progress_bar(f'COCO {args.iou_type} evaluation ({args.backend})', unit='stages') as advance:
            stats = evaluate_coco(args.gt, args.predictions, args.iou_type, args.backend, progress=advance)
        if args.json:
            write_json(stats.as_dict(), args.json)
    except (CocoEvalError, DataError, OSError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    print(stats.table, end='')
    return 0


def _metrics_command(argv: list[str], parser: argparse.ArgumentParser,
                     score: Callable[[argparse.Namespace], tuple[Dict[str, float], str]]) -> int:
    """Parse, score, print `name  value` lines (and what was scored), write --json; 1 on bad input."""
    args = parser.parse_args(argv)
    try:
        metrics, scored = score(args)
        if args.json:
            write_json(metrics, args.json)
    except (DataError, OSError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    width = max(map(len, metrics))
    print(f"{scored}")
    for name, value in metrics.items():
        print(f"{name:<{width}}  {value:.4f}")
    return 0


def _metrics_parser(prog: str, description: str, inputs: Sequence[tuple[str, str]], predictions_help: str,
                    what: str) -> argparse.ArgumentParser:
    """The parser of a metrics command: the required ground-truth `inputs` (flag, help), --predictions, then
    --allow-missing (help naming `what` is scored: 'images', 'questions') and --json."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    for flag, help_text in inputs:
        parser.add_argument(flag, required=True, help=help_text)
    parser.add_argument('--predictions', required=True, help=predictions_help)
    parser.add_argument('--allow-missing', action='store_true',
                        help=f'score only the {what} that have a prediction (default: every {what[:-1]} of the '
                             'ground truth needs one)')
    parser.add_argument('--json', metavar='OUT.json', help='also write the metrics as a JSON object here')
    return parser


def captions_main(argv: list[str]) -> int:
    """Run `vlm evaluate-captions` on `argv`; 1 on bad input."""
    parser = _metrics_parser(
        'vlm evaluate-captions',
        'BLEU1-4, CIDEr and ROUGE_L of caption results (pycocoevalcap scorers, PTB tokenisation in Python: no '
        'Java). METEOR and SPICE are not computed.',
        [('--gt', 'COCO captions JSON (images, annotations with caption)')],
        'COCO caption results JSON: a list of {"image_id": int, "caption": str}', 'images')

    def score(args: argparse.Namespace) -> tuple[Dict[str, float], str]:
        from vlm.data.captions import read_caption_references
        from vlm.evaluation.caption_scores import evaluate_captions
        from vlm.evaluation.results_files import read_caption_results

        references = read_caption_references(args.gt)
        predictions = read_caption_results(args.predictions, references)
        metrics = evaluate_captions(references, predictions, args.allow_missing, source=args.predictions)
        return metrics, f"{len(predictions)} of {len(references)} images with captions scored"

    return _metrics_command(argv, parser, score)


def vqa_main(argv: list[str]) -> int:
    """Run `vlm evaluate-vqa` on `argv`; 1 on bad input."""
    parser = _metrics_parser(
        'vlm evaluate-vqa',
        'VQAv2 accuracy of VQA results, overall and per answer type, as the official evaluation computes it '
        '(fractions in [0, 1]).',
        [('--questions', 'VQAv2 questions JSON (v2_OpenEnded_*_questions.json)'),
         ('--annotations', 'VQAv2 annotations JSON (v2_*_annotations.json)')],
        'VQAv2 results JSON: a list of {"question_id": int, "answer": str}', 'questions')

    def score(args: argparse.Namespace) -> tuple[Dict[str, float], str]:
        from vlm.data.vqa import read_vqa_annotations
        from vlm.evaluation.results_files import read_vqa_results
        from vlm.evaluation.vqa_accuracy import vqa_accuracy

        answers, answer_types = read_vqa_annotations(args.questions, args.annotations)
        predictions = read_vqa_results(args.predictions, answers)
        metrics = vqa_accuracy(answers, predictions, answer_types, args.allow_missing, source=args.predictions)
        return metrics, f"{len(predictions)} of {len(answers)} questions scored"

    return _metrics_command(argv, parser, score)
