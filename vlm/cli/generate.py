"""`vlm caption` and `vlm ask`: a vision-language model directory (`vlm export`) from the command line."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List, Optional


def _generation_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--model', required=True, help='a model directory written by `vlm export`')
    parser.add_argument('images', nargs='*', help='image files (any size); a bad one is reported, the rest answered')
    parser.add_argument('--max-new-tokens', type=int, default=32)
    parser.add_argument('--num-beams', type=int, default=1)
    parser.add_argument('--sample', action='store_true', help='sample instead of greedy decoding')
    parser.add_argument('--temperature', type=float, default=1.0)
    parser.add_argument('--top-p', type=float, default=1.0)
    parser.add_argument('--top-k', type=int, default=50)
    parser.add_argument('--seed', type=int, default=0, help='seed for sampling')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--image-size', type=int, default=None, help='run at another resolution than trained')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--json', action='store_true', help='one JSON object per line instead of "path<TAB>text"')


def _generation_options(args: argparse.Namespace) -> Dict[str, Any]:
    options: Dict[str, Any] = {'max_new_tokens': args.max_new_tokens, 'num_beams': args.num_beams,
                               'do_sample': args.sample}
    if args.sample:
        import torch

        options.update(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k)
        torch.manual_seed(args.seed)
    return options


def _predictor(args: argparse.Namespace):
    from vlm.language.inference import VisionLanguagePredictor

    return VisionLanguagePredictor.from_pretrained(args.model, device=args.device, batch_size=args.batch_size,
                                                   image_size=args.image_size)


def _print_answers(answers, as_json: bool, command: str) -> int:
    failed = 0
    for answer in answers:
        if answer.error is not None:
            failed += 1
            print(f'vlm {command}: error: {answer.error}', file=sys.stderr)
        if as_json:
            print(json.dumps({'image': answer.source, 'text': answer.text, 'error': answer.error}))
        elif answer.error is None:
            print(f'{answer.source}\t{answer.text}')
    return 1 if failed else 0


def caption(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='vlm caption', description='Caption images with a vlm model directory.')
    _generation_arguments(parser)
    args = parser.parse_args(argv)
    if not args.images:
        parser.error('give at least one image')
    predictor = _predictor(args)
    return _print_answers(predictor.caption_files(args.images, **_generation_options(args)), args.json, 'caption')


def ask(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog='vlm ask', description='Answer a question about each image; without images, a text-only question.')
    _generation_arguments(parser)
    parser.add_argument('--question', required=True)
    args = parser.parse_args(argv)
    from vlm.language.prompts import vqa_prompt

    vqa_prompt(args.question)  # an empty question is refused before the model loads
    predictor = _predictor(args)
    options = _generation_options(args)
    if not args.images:
        print(predictor.complete([args.question], **options)[0])
        return 0
    return _print_answers(predictor.ask_files(args.images, args.question, **options), args.json, 'ask')
