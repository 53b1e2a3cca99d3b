"""`vlm demo --model DIR [--detector CKPT] [--segmenter CKPT]`: the local web page of `vlm.demo` (Gradio, served on
127.0.0.1 only, no share link, analytics off)."""
from __future__ import annotations

import argparse
import importlib.util
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    from .generate import add_precision_argument

    parser = argparse.ArgumentParser(prog='vlm demo', description='A local web page: caption, detect, segment, chat.')
    parser.add_argument('--model', help='a vision-language model directory written by `vlm export`')
    parser.add_argument('--detector', help='a detection checkpoint of `vlm fit` (FCOS, RetinaNet or Mask R-CNN)')
    parser.add_argument('--segmenter', help='a semantic segmentation checkpoint of `vlm fit`')
    parser.add_argument('--score-threshold', type=float, default=None,
                        help="detections drawn from this score (default: the checkpoint's draw_score_thresh)")
    parser.add_argument('--max-new-tokens', type=int, default=64)
    parser.add_argument('--max-image-pixels', type=int, default=None, help='refuse larger uploads')
    parser.add_argument('--host', default='127.0.0.1', help='the address to serve on (default: this machine only)')
    parser.add_argument('--port', type=int, default=7860)
    parser.add_argument('--device', default='cpu')
    add_precision_argument(parser)
    args = parser.parse_args(argv)
    if not (args.model or args.detector or args.segmenter):
        parser.error('give --model, --detector and / or --segmenter')
    if importlib.util.find_spec('gradio') is None:
        parser.error("the demo needs gradio: pip install -e '.[demo]'")
    from vlm.errors import InputError

    from .generate import device_problems

    problems = device_problems(args.device) + ([f'--max-new-tokens must be at least 1, got {args.max_new_tokens}']
                                               if args.max_new_tokens < 1 else [])
    if problems:
        raise InputError('; '.join(problems))
    from vlm.demo.app import DemoApp, launch
    from vlm.demo.vision import DemoDetector, DemoSegmenter
    from vlm.language.inference import VisionLanguagePredictor

    app = DemoApp(
        VisionLanguagePredictor.from_pretrained(args.model, device=args.device, precision=args.precision)
        if args.model else None,
        DemoDetector(args.detector, args.score_threshold) if args.detector else None,
        DemoSegmenter(args.segmenter) if args.segmenter else None,
        args.max_new_tokens, args.max_image_pixels)
    print(f'vlm demo: serving on http://{args.host}:{args.port}', flush=True)
    launch(app, args.host, args.port)
    return 0
