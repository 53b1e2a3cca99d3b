"""`vlm caption` and `vlm ask`: a vision-language model directory (`vlm export`) from the command line; with
`--stream`, each answer is printed token by token as it is generated."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List, Optional


def add_generation_arguments(parser: argparse.ArgumentParser, max_new_tokens: int = 32) -> None:
    """--model, images and transformers' generation options, shared by caption, ask and chat."""
    parser.add_argument('--model', required=True, help='a model directory written by `vlm export`')
    parser.add_argument('images', nargs='*', help='image files (any size); a bad one is reported, the rest answered')
    parser.add_argument('--max-new-tokens', type=int, default=max_new_tokens)
    parser.add_argument('--num-beams', type=int, default=1)
    parser.add_argument('--sample', action='store_true', help='sample instead of greedy decoding')
    parser.add_argument('--temperature', type=float, default=1.0)
    parser.add_argument('--top-p', type=float, default=1.0)
    parser.add_argument('--top-k', type=int, default=50)
    parser.add_argument('--seed', type=int, default=0, help='seed for sampling')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--image-size', type=int, default=None, help='run at another resolution than trained')
    parser.add_argument('--device', default='cpu')
    add_precision_argument(parser)


def add_precision_argument(parser: argparse.ArgumentParser) -> None:
    from vlm.language.precision import PRECISIONS

    parser.add_argument('--precision', choices=PRECISIONS, default=None,
                        help="weights for inference: fp32, bf16 (half the bytes) or int8 (int8 decoder weights, "
                             "bf16 otherwise; needs torchao); default: as the model folder stores them. "
                             "See docs/inference.md")


def _output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--json', action='store_true', help='one JSON object per line instead of "path<TAB>text"')
    parser.add_argument('--stream', action='store_true', help='print each answer token by token as it is generated')


def check_generation_arguments(args: argparse.Namespace) -> None:
    """Refuse option values transformers or torch would fail on deep inside generation, each in one line naming
    the option: before any model is loaded."""
    from vlm.errors import InputError

    problems = []
    if args.max_new_tokens < 1:
        problems.append(f'--max-new-tokens must be at least 1, got {args.max_new_tokens}')
    if args.num_beams < 1:
        problems.append(f'--num-beams must be at least 1, got {args.num_beams}')
    if args.batch_size < 1:
        problems.append(f'--batch-size must be at least 1, got {args.batch_size}')
    if args.image_size is not None and args.image_size < 1:
        problems.append(f'--image-size must be a positive number of pixels, got {args.image_size}')
    if args.sample:
        if not args.temperature > 0:
            problems.append(f'--temperature must be > 0 when sampling, got {args.temperature} (greedy decoding: '
                            'leave out --sample)')
        if not 0 < args.top_p <= 1:
            problems.append(f'--top-p must be in (0, 1], got {args.top_p}')
        if args.top_k < 0:
            problems.append(f'--top-k must be >= 0 (0: no limit), got {args.top_k}')
    problems += device_problems(args.device)
    if problems:
        raise InputError('; '.join(problems))


def device_problems(device: str) -> List[str]:
    """Why `device` cannot run a model here (not a device name, or a GPU this machine lacks), if it cannot."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        return [f'--device {device!r} is not a device (cpu, cuda, cuda:1, mps)']
    if parsed.type == 'cuda' and (not torch.cuda.is_available()
                                  or (parsed.index or 0) >= torch.cuda.device_count()):
        return [f'--device {device}: no such CUDA device on this machine ({torch.cuda.device_count()} GPUs); '
                'use --device cpu']
    if parsed.type == 'mps' and not torch.backends.mps.is_available():
        return [f'--device {device}: MPS is not available on this machine; use --device cpu']
    if parsed.type not in ('cpu', 'cuda', 'mps'):
        return [f'--device {device}: vlm runs on cpu, cuda or mps']
    return []


def generation_options(args: argparse.Namespace) -> Dict[str, Any]:
    options: Dict[str, Any] = {'max_new_tokens': args.max_new_tokens, 'num_beams': args.num_beams,
                               'do_sample': args.sample}
    if args.sample:
        import torch

        options.update(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k)
        torch.manual_seed(args.seed)
    return options


def load_predictor(args: argparse.Namespace):
    from vlm.language.inference import VisionLanguagePredictor

    check_generation_arguments(args)
    return VisionLanguagePredictor.from_pretrained(args.model, device=args.device, precision=args.precision,
                                                   batch_size=args.batch_size,
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


def _stream_answers(predictor, paths: List[Optional[str]], conversation, options: Dict[str, Any]) -> int:
    """Each image's answer to `conversation`, streamed: 'path<TAB>' then the text as it comes (no image: the
    text alone). An unreadable image is reported and the others answered."""
    from vlm.errors import DataError

    failed = 0
    for path in paths:
        try:
            images = [predictor.processor.load_image(path)] if path is not None else []  # (3, S, S)
        except DataError as error:
            failed += 1
            print(f'vlm: error: {error}', file=sys.stderr, flush=True)
            continue
        print(f'{path}\t' if path is not None else '', end='', flush=True)
        for piece in predictor.stream(conversation, images, **options):
            print(piece, end='', flush=True)
        print(flush=True)
    return 1 if failed else 0


def caption(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='vlm caption', description='Caption images with a vlm model directory.')
    add_generation_arguments(parser)
    _output_arguments(parser)
    args = parser.parse_args(argv)
    if not args.images:
        parser.error('give at least one image')
    if args.stream and args.json:
        parser.error('--stream prints text as it comes; it does not go with --json')
    if args.stream and args.num_beams > 1:
        parser.error('--stream cannot follow beam search; use --num-beams 1')
    predictor = load_predictor(args)
    if args.stream:
        from vlm.language.prompts import caption_conversation

        return _stream_answers(predictor, args.images, caption_conversation(), generation_options(args))
    return _print_answers(predictor.caption_files(args.images, **generation_options(args)), args.json, 'caption')


def ask(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog='vlm ask', description='Answer a question about each image; without images, a text-only question.')
    add_generation_arguments(parser)
    _output_arguments(parser)
    parser.add_argument('--question', required=True)
    args = parser.parse_args(argv)
    from vlm.language.prompts import vqa_prompt

    vqa_prompt(args.question)  # an empty question is refused before the model loads
    if args.stream and args.json:
        parser.error('--stream prints text as it comes; it does not go with --json')
    if args.stream and args.num_beams > 1:
        parser.error('--stream cannot follow beam search; use --num-beams 1')
    predictor = load_predictor(args)
    options = generation_options(args)
    if args.stream:
        from vlm.language.prompts import text_conversation, vqa_conversation

        if not args.images:
            return _stream_answers(predictor, [None], text_conversation(args.question), options)
        return _stream_answers(predictor, args.images, vqa_conversation([args.question]), options)
    if not args.images:
        print(predictor.complete([args.question], **options)[0])
        return 0
    return _print_answers(predictor.ask_files(args.images, args.question, **options), args.json, 'ask')
