"""The `vlm` command: Lightning subcommands (fit / validate / test / predict) and vlm's own tools.

Each subcommand lives in its own module, imported only when used, so `vlm --help` stays fast. Known kinds of
bad input (a missing data root, a bad annotation, a checkpoint that does not fit) end with one clear message
instead of a stack trace.
"""
from __future__ import annotations

import importlib
import sys
from typing import Callable, Dict, List, Optional, Tuple

# name -> (module, function, one-line help); the function takes the remaining argv
SUBCOMMANDS: Dict[str, Tuple[str, str, str]] = {
    'fit': ('vlm.cli', 'lightning', 'train a model: `vlm fit --config configs/shapes/classification.yaml`'),
    'validate': ('vlm.cli', 'lightning', 'evaluate on the validation split (`--ckpt_path ...`)'),
    'test': ('vlm.cli', 'lightning', 'evaluate on the test split (`--ckpt_path ...`)'),
    'predict': ('vlm.cli', 'lightning', 'write predictions (`--ckpt_path ...`)'),
    'data': ('vlm.data.cli', 'main', 'generate datasets: `vlm data shapes --out data/shapes`'),
    'evaluate-coco': ('vlm.evaluation.cli', 'main',
                      'COCO mAP of a results JSON: `vlm evaluate-coco --gt GT.json --predictions RESULTS.json`'),
    'evaluate-captions': ('vlm.evaluation.cli', 'captions_main',
                          'BLEU, CIDEr, ROUGE-L of caption results: `vlm evaluate-captions --gt GT.json '
                          '--predictions RESULTS.json`'),
    'evaluate-vqa': ('vlm.evaluation.cli', 'vqa_main',
                     'VQAv2 accuracy: `vlm evaluate-vqa --questions Q.json --annotations A.json '
                     '--predictions RESULTS.json`'),
    'caption': ('vlm.language.cli', 'caption', 'caption images: `vlm caption --model DIR IMAGE [IMAGE ...]`'),
    'ask': ('vlm.language.cli', 'ask', 'answer a question: `vlm ask --model DIR --question "..." IMAGE [...]`'),
    'export': ('vlm.language.cli', 'export', 'checkpoint -> Hugging Face directory: `vlm export --ckpt C --out DIR`'),
}


def lightning(argv: List[str]) -> int:
    """Run Lightning's CLI on `argv` (subcommand first)."""
    from vlm.lightning_cli import VlmCLI

    VlmCLI(args=argv)
    return 0


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
    command: Callable[[List[str]], Optional[int]] = getattr(importlib.import_module(module), function)
    rest = argv if module == 'vlm.cli' else argv[1:]
    from vlm.data.errors import DataError, InputError
    from vlm.encoder.weights import CheckpointShapeError

    try:
        return command(rest) or 0
    except (DataError, InputError, CheckpointShapeError, FileNotFoundError) as error:
        print(f"vlm {name}: error: {error}", file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
