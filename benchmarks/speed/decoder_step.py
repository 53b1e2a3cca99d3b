"""One VLM training step with the pretrained SmolLM2-135M decoder on this CPU: seconds and peak memory, for bf16
autocast against float32, 2 threads against 1, LoRA against the whole decoder trained.

Each setting runs in a fresh process (so its peak resident memory is its own): the model and a batch come from
`configs/shapes/vqa_smollm2.yaml` (8 images x their 5 questions packed as one conversation each, the config's
LoRA), then `--steps` timed steps (forward, backward, AdamW) after one warm-up step. Ratios are against the
first row, measured in the same run.

    python -m benchmarks.speed.decoder_step [--steps 3] [--config configs/shapes/vqa_smollm2.yaml]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[2]
SETTINGS = [  # (precision, threads, decoder training)
    ('bf16', 2, 'lora'), ('fp32', 2, 'lora'), ('bf16', 1, 'lora'), ('bf16', 2, 'full'),
]


def one_setting(config: str, precision: str, threads: int, decoder: str, steps: int) -> Dict[str, Any]:
    import torch

    from vlm.cli.lightning import VlmCLI

    torch.set_num_threads(threads)
    options = (['--model.init_args.lora', 'null', '--model.init_args.trainable', '[encoder, projector, decoder]']
               if decoder == 'full' else [])
    cli = VlmCLI(args=['--config', config, *options, '--data.init_args.num_workers', '0'], run=False)
    task, datamodule = cli.model, cli.datamodule
    task.trainer = cli.trainer
    datamodule.setup('fit')
    task.setup('fit')
    datamodule.set_collate_fns(task.collator(training=True), task.collator(training=False))  # Lightning's fit does this
    batch = next(iter(datamodule.train_dataloader()))
    optimizer = torch.optim.AdamW([p for p in task.parameters() if p.requires_grad], lr=1e-4)
    task.model.train()

    def step() -> None:
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=precision == 'bf16'):
            loss = task.model(**batch['inputs'], labelled_logits_only=True).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    tokens = int(batch['inputs']['attention_mask'].sum())
    return dict(precision=precision, threads=threads, decoder=decoder, seconds=seconds, tokens=tokens,
                images=int(batch['inputs']['pixel_values'].shape[0]),
                peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default=str(REPO / 'configs/shapes/vqa_smollm2.yaml'))
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--one', nargs=3, metavar=('PRECISION', 'THREADS', 'DECODER'), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        precision, threads, decoder = args.one
        print(json.dumps(one_setting(args.config, precision, int(threads), decoder, args.steps)))
        return
    rows: List[Dict[str, Any]] = []
    for precision, threads, decoder in SETTINGS:
        output = subprocess.run([sys.executable, '-m', 'benchmarks.speed.decoder_step', '--config', args.config,
                                 '--steps', str(args.steps), '--one', precision, str(threads), decoder],
                                capture_output=True, text=True, cwd=REPO, check=True).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
    first = rows[0]['seconds']
    print(f"\nOne training step, {rows[0]['images']} images, {rows[0]['tokens']} tokens (mean of {args.steps})\n")
    print('| precision | threads | decoder | s / step | tokens / s | time vs first row | peak memory |')
    print('| --- | --- | --- | --- | --- | --- | --- |')
    for row in rows:
        print(f"| {row['precision']} | {row['threads']} | {row['decoder']} | {row['seconds']:.2f} | "
              f"{row['tokens'] / row['seconds']:.0f} | {row['seconds'] / first:.2f}x | {row['peak_rss_gib']:.2f} GiB |")


if __name__ == '__main__':
    main()
