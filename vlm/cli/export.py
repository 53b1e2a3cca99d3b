"""`vlm export`: a vision-language checkpoint of `vlm fit` -> a Hugging Face model directory (config.json,
model.safetensors, tokenizer files, processor_config.json) that `vlm caption` / `ask`, `VisionLanguagePredictor`
and transformers' Auto classes load."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog='vlm export',
        description='Write a VisionLanguageTask checkpoint as a Hugging Face directory: config.json, '
                    'model.safetensors, tokenizer files, processor_config.json.')
    parser.add_argument('--ckpt', required=True, help='a Lightning checkpoint of `vlm fit` (e.g. .../last.ckpt)')
    parser.add_argument('--out', required=True, help='the directory to write')
    args = parser.parse_args(argv)
    from vlm.tasks.vision_language import VisionLanguageTask

    task = VisionLanguageTask.load_from_checkpoint(args.ckpt, map_location='cpu')
    task.exportable_model().save_pretrained(args.out)  # LoRA adapters merged: the folder loads without peft
    task.processor.save_pretrained(args.out)
    print(f'wrote {args.out}: ' + ', '.join(sorted(path.name for path in Path(args.out).iterdir())))
    return 0
