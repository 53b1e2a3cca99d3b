"""Can the train dataloaders keep up with training? Images/s delivered by each shapes train dataloader
(2 workers, as configured for training) against images/s consumed by a training step of the tiny encoder at
the same image size, both measured in this process. Goal: ratio >= 3, so training never waits on data.

    python -m benchmarks.speed.data_speed [--root data/shapes] [--batches 30]
"""
from __future__ import annotations

import argparse
import time
from typing import Callable, Dict

import timm
import torch
from torch.utils.data import DataLoader

from vlm.data import ClassificationDataModule, CocoDataModule, SegmentationDataModule, ensure_shapes


def loader_rate(loader: DataLoader, batches: int, count: Callable[[dict], int]) -> float:
    """Images/s over `batches` batches after the workers have started (first batch not timed)."""
    iterator = iter(loader)
    next(iterator)
    images, start = 0, time.perf_counter()
    for _ in range(batches):
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            batch = next(iterator)
        images += count(batch)
    return images / (time.perf_counter() - start)


def train_step_rate(image_size: int, batch_size: int, patch_size: int, steps: int = 5) -> float:
    """Images/s of forward + backward + AdamW of the tiny vlm encoder (fp32, CPU)."""
    model = timm.create_model('vlm_vit_tiny_patch16_rope_rms', patch_size=patch_size, num_classes=10)
    optimizer = torch.optim.AdamW(model.parameters())
    images, labels = torch.randn(batch_size, 3, image_size, image_size), torch.randint(0, 10, (batch_size,))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch_size * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--root', default='data/shapes')
    parser.add_argument('--batches', type=int, default=30)
    parser.add_argument('--workers', type=int, default=2)
    args = parser.parse_args()
    ensure_shapes(args.root)
    common = dict(num_workers=args.workers, batch_size=32)
    cases: Dict[str, tuple] = {
        'classification (64 px)': (
            ClassificationDataModule(root=f'{args.root}/classification', image_size=64, crop_pct=1.0, **common),
            lambda b: len(b['images']), 64, 8),
        'detection + masks (128 px, scale jitter)': (
            CocoDataModule(root=args.root, train_images='images/train', val_images='images/val',
                           train_annotations='annotations/instances_train.json',
                           val_annotations='annotations/instances_val.json', with_masks=True, image_size=128, **common),
            lambda b: len(b['images']), 128, 8),
        'semantic segmentation (128 px crops)': (
            SegmentationDataModule(root=args.root, train_images='images/train', val_images='images/val',
                                   train_labels='segmentation/train', val_labels='segmentation/val', num_classes=7,
                                   crop_size=128, **common),
            lambda b: len(b['images']), 128, 8),
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.workers} loader workers, batch 32")
    header = f"{'train dataloader':<42} {'loader img/s':>12} {'step img/s':>11} {'ratio':>7}"
    print(header)
    print('-' * len(header))
    for name, (datamodule, count, size, patch) in cases.items():
        datamodule.setup('fit')
        delivered = loader_rate(datamodule.train_dataloader(), args.batches, count)
        consumed = train_step_rate(size, 32, patch)
        print(f"{name:<42} {delivered:>12.1f} {consumed:>11.1f} {delivered / consumed:>7.1f}")


if __name__ == '__main__':
    main()
