"""Does the converted DINOv2-small transfer? Fine-tune it and the same encoder from random init, same budget, on the
shapes classification tree and on scikit-learn's 8x8 handwritten digits (upsampled), with `vlm fit`'s classifier.

Writes the digits as an ImageNet-style folder first (`--digits`, 80/20 split by a fixed permutation, 56 px RGB),
then runs each (dataset, initial weights) pair for `--epochs` epochs at lr `--lr` (AdamW, warmup, cosine; the
config's recipe otherwise), alone and one after another, and prints a markdown table: val/acc1 after each epoch,
the wall time, and how far the mixed RoPE frequencies (zero after conversion: the identity) moved.

    vlm weights dinov2-small --out weights/dinov2-small
    vlm convert local-dir:weights/dinov2-small --out weights/dinov2-small-rope-rms
    python -m benchmarks.experiments.transfer_table --encoder weights/dinov2-small-rope-rms [--epochs 2] [--lr 3e-4]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from lightning.pytorch import Callback
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SIZE = 56  # 4 x 4 patches of 14


def write_digits(out: Path, size: int = SIZE) -> Path:
    """scikit-learn's 1797 digits as `out/{train,val}/<digit>/<index>.png` (grey on RGB, `size` px)."""
    from sklearn.datasets import load_digits

    if (out / 'val').is_dir():
        return out
    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.images))
    split = int(0.8 * len(order))
    for rank, index in enumerate(order):
        folder = out / ('train' if rank < split else 'val') / str(digits.target[index])
        folder.mkdir(parents=True, exist_ok=True)
        grey = (digits.images[index] / 16 * 255).astype(np.uint8)
        Image.fromarray(grey).resize((size, size), Image.BICUBIC).convert('RGB').save(folder / f'{index:04d}.png')
    return out


def encoder_options(folder: Path, pretrained: bool) -> List[str]:
    """The converted folder itself, or the same architecture and arguments from random init."""
    if pretrained:  # the config's from-scratch encoder_kwargs do not apply
        return ['--model.init_args.encoder', f'local-dir:{folder}', '--model.init_args.encoder_kwargs', '{}']
    config = json.loads((folder / 'config.json').read_text())
    kwargs = {k: v for k, v in config['model_args'].items() if k not in ('num_classes',)}
    kwargs['img_size'] = SIZE
    return ['--model.init_args.encoder', config['architecture'], '--model.init_args.encoder_kwargs', json.dumps(kwargs)]


class RecordAccuracy(Callback):
    """Appends val/acc1 after every validation epoch (not the sanity check)."""

    def __init__(self, accuracies: List[float]) -> None:
        self.accuracies = accuracies

    def on_validation_epoch_end(self, trainer: Any, module: Any) -> None:
        if not trainer.sanity_checking:
            self.accuracies.append(float(trainer.callback_metrics['val/acc1']))


def fine_tune(dataset: Path, pretrained: bool, folder: Path, epochs: int, lr: float, out: Path) -> Dict[str, Any]:
    from vlm.cli.lightning import VlmCLI

    name = f"{dataset.name}_{'dinov2' if pretrained else 'random'}"
    config = str(REPO / 'configs/shapes/classification.yaml')
    cli = VlmCLI(args=['--config', config, *encoder_options(folder, pretrained),
                       '--model.init_args.optimization.lr', str(lr), '--trainer.max_epochs', str(epochs),
                       '--data.init_args.root', str(dataset), '--data.init_args.shapes_root', 'null',
                       '--data.init_args.image_size', str(SIZE), '--data.init_args.batch_size', '32',
                       '--trainer.enable_progress_bar', 'false', '--trainer.enable_checkpointing', 'false',
                       '--trainer.logger.init_args.save_dir', str(out), '--trainer.logger.init_args.name', name],
                 run=False)
    accuracies: List[float] = []

    cli.trainer.callbacks.append(RecordAccuracy(accuracies))
    encoder = cli.model.encoder_module()
    freqs_before = encoder.rope.freqs.detach().clone() if getattr(encoder, 'rope', None) is not None else None
    start = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    seconds = time.perf_counter() - start
    moved = (float((cli.model.encoder_module().rope.freqs.detach() - freqs_before).abs().max())
             if freqs_before is not None else float('nan'))
    return dict(dataset=dataset.name, init='converted DINOv2-small' if pretrained else 'random init',
                accuracies=accuracies, seconds=seconds, rope_moved=moved)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--encoder', default='weights/dinov2-small-rope-rms', help='a `vlm convert` folder')
    parser.add_argument('--shapes', default='data/shapes/classification')
    parser.add_argument('--digits', default='data/digits')
    parser.add_argument('--epochs', type=int, default=2)
    parser.add_argument('--lr', type=float, default=3e-4)
    parser.add_argument('--out', default='runs/transfer_table')
    args = parser.parse_args(argv)
    datasets = [Path(args.shapes), write_digits(Path(args.digits))]
    rows = [fine_tune(dataset, pretrained, Path(args.encoder), args.epochs, args.lr, Path(args.out))
            for dataset in datasets for pretrained in (True, False)]
    print(f'\n{args.epochs} epochs each at lr {args.lr}, {SIZE} px, batch 32, {torch.get_num_threads()} threads\n')
    print('| dataset | initial encoder | val/acc1 per epoch | wall | RoPE frequencies moved (max abs) |')
    print('| --- | --- | --- | --- | --- |')
    for row in rows:
        print(f"| {row['dataset']} | {row['init']} | {', '.join(f'{a:.3f}' for a in row['accuracies'])} | "
              f"{row['seconds']:.0f} s | {row['rope_moved']:.2e} |")


if __name__ == '__main__':
    main()
