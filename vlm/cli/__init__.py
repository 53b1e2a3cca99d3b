"""The `vlm` command: Lightning subcommands (fit / validate / test / predict) and vlm's own tools.

Each subcommand lives in its own module, imported only when used, so `vlm --help` stays fast. Known kinds of
bad input (a missing data root, a bad annotation, a checkpoint that does not fit) end with one clear message
instead of a stack trace.
"""
from __future__ import annotations

import importlib
import sys
from typing import Callable, Dict, List, Optional, Tuple

# name -> (module, function, one-line help); the function takes the arguments after the name
SUBCOMMANDS: Dict[str, Tuple[str, str, str]] = {
    'fit': ('vlm.cli.lightning', 'fit', 'train a model: `vlm fit --config configs/shapes/detection.yaml`'),
    'validate': ('vlm.cli.lightning', 'validate', 'evaluate on the validation split (`--ckpt_path ...`)'),
    'test': ('vlm.cli.lightning', 'test', 'evaluate on the test split (`--ckpt_path ...`)'),
    'predict': ('vlm.cli.lightning', 'predict', 'write predictions (`--ckpt_path ...`)'),
    'data': ('vlm.cli.data', 'main', 'generate datasets: `vlm data shapes --out data/shapes`'),
    'evaluate-coco': ('vlm.cli.evaluate', 'coco_main',
                      'COCO mAP of a results JSON: `vlm evaluate-coco --gt GT.json --predictions RESULTS.json`'),
    'evaluate-captions': ('vlm.cli.evaluate', 'captions_main',
                          'BLEU, CIDEr, ROUGE-L of caption results: `vlm evaluate-captions --gt GT.json '
                          '--predictions RESULTS.json`'),
    'evaluate-vqa': ('vlm.cli.evaluate', 'vqa_main',
                     'VQAv2 accuracy: `vlm evaluate-vqa --questions Q.json --annotations A.json '
                     '--predictions RESULTS.json`'),
    'caption': ('vlm.cli.generate', 'caption', 'caption images: `vlm caption --model DIR IMAGE [IMAGE ...]`'),
    'ask': ('vlm.cli.generate', 'ask', 'answer a question: `vlm ask --model DIR --question "..." IMAGE [...]`'),
    'chat': ('vlm.cli.chat', 'main', 'a multi-turn dialogue, streamed: `vlm chat --model DIR [IMAGE ...]`'),
    'demo': ('vlm.cli.demo', 'main', 'a local web page: `vlm demo --model DIR [--detector CKPT] [--segmenter CKPT]`'),
    'export': ('vlm.cli.export', 'main', 'checkpoint -> Hugging Face directory: `vlm export --ckpt C --out DIR`'),
    'convert': ('vlm.cli.convert', 'main',
                'a pre-LN ViT -> the RoPE/RMSNorm encoder, exactly: `vlm convert local-dir:weights/dinov2-small '
                '--out weights/dinov2-small-rope-rms`'),
    'weights': ('vlm.cli.weights', 'main',
                'real pretrained weights, offline: `vlm weights smollm2-135m-instruct --out weights/smollm2-135m-instruct`'),
}


def _usage() -> str:
    lines = ['usage: vlm <command> [options]', '', 'commands:']
    width = max(len(name) for name in SUBCOMMANDS)
    lines += [f"  {name:<{width}}  {text}" for name, (_, _, text) in SUBCOMMANDS.items()]
    lines += ['', "`vlm <command> --help` describes a command's options."]
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ('-h', '--help'):
        print(_usage())
        return 0
    name = argv[0]
    if name not in SUBCOMMANDS:
        print(f"vlm: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module, function, _ = SUBCOMMANDS[name]
    from vlm.errors import CheckpointShapeError, DataError, InputError, one_line

    from .quiet import quiet

    quiet()  # before the command imports the libraries whose noise it filters

    try:
        command: Callable[[List[str]], Optional[int]] = getattr(importlib.import_module(module), function)
        return command(argv[1:]) or 0
    except (DataError, InputError, CheckpointShapeError, FileNotFoundError) as error:
        print(f"vlm {name}: error: {one_line(error)}", file=sys.stderr)  # raised in a loader worker or not
        return 1
