"""`vlm export`: a vision-language checkpoint of `vlm fit` -> a Hugging Face model directory (config.json,
model.safetensors, tokenizer files, processor_config.json) that `vlm caption` / `ask` / `chat`,
`VisionLanguagePredictor` and transformers' Auto classes load."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional

from vlm.errors import CheckpointShapeError
from vlm.io.folders import check_output_folder, staged_folder


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog='vlm export',
        description='Write a VisionLanguageTask checkpoint as a Hugging Face directory: config.json, '
                    'model.safetensors, tokenizer files, processor_config.json (LoRA adapters merged).')
    parser.add_argument('--ckpt', required=True, help='a Lightning checkpoint of `vlm fit` (e.g. .../last.ckpt)')
    parser.add_argument('--out', required=True, help='the directory to write')
    parser.add_argument('--overwrite', action='store_true', help='replace a non-empty --out (its files are removed)')
    parser.add_argument('--precision', choices=('fp32', 'bf16'), default='fp32',
                        help='the stored weights: fp32 as trained, or bf16 (half the size; `vlm ask` and the others '
                             'then run in bf16 unless given --precision). int8 is chosen when loading: '
                             '`vlm ask --precision int8`')
    args = parser.parse_args(argv)
    out = Path(args.out)
    check_output_folder(out, args.overwrite, [args.ckpt])
    import torch

    from vlm.io.checkpoints import read_checkpoint
    from vlm.language.checkpoint import TOKENIZER_KEY
    from vlm.tasks.vision_language import VisionLanguageTask

    checkpoint = read_checkpoint(args.ckpt)
    if TOKENIZER_KEY not in checkpoint:
        kind = (checkpoint.get('hyper_parameters') or {}).get('_class_path', 'another task')
        raise CheckpointShapeError(f'{args.ckpt}: a checkpoint of {kind}, not of a vision-language model '
                                   f'(vlm.tasks.VisionLanguageTask): there is nothing to export')
    task = VisionLanguageTask.from_checkpoint(checkpoint)
    with staged_folder(out) as staging:  # a failed export leaves --out as it was
        model = task.exportable_model()  # LoRA adapters merged: the folder loads without peft
        if args.precision == 'bf16':
            model = model.to(torch.bfloat16)
        model.save_pretrained(staging)
        task.processor.save_pretrained(staging)
    print(f'wrote {out}: ' + ', '.join(sorted(path.name for path in out.iterdir())))
    return 0
