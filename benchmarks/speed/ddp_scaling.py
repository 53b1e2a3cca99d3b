"""DDP scaling on this machine: training throughput (images/s over all processes) of the same tiny classification
run with 1 process and with N CPU processes under DDP (gloo), each process with its own thread(s) and the same
per-process batch (weak scaling), both launched through `vlm fit` like any run. Ideal ratio: N.

The images are random PNGs written to a temporary ImageFolder; the model a 4-block ViT-Ti/8 at 64 px. Throughput
is timed on rank 0 by a callback from the end of the warm-up steps to the end of the last step (DDP's
all-reduce keeps the ranks in step).

    python -m benchmarks.speed.ddp_scaling [--processes 2] [--steps 30] [--batch-size 16] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import lightning as L
import numpy as np
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


class Throughput(L.Callback):
    """Images/s over all ranks between the end of training step `warmup` and the end of the last step; rank 0
    writes {"images_per_s", "steps", "world_size"} to `path`."""

    def __init__(self, path: str, warmup: int = 3) -> None:
        self.path, self.warmup = path, warmup
        self.images, self.start, self.steps = 0, None, 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Dict[str, Any],
                           batch_idx: int) -> None:
        if batch_idx + 1 == self.warmup:
            self.start = time.perf_counter()
        elif batch_idx + 1 > self.warmup:
            self.images += len(batch['images']) * trainer.world_size
            self.steps += 1

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if trainer.is_global_zero and self.start is not None:
            seconds = time.perf_counter() - self.start
            Path(self.path).write_text(json.dumps({'images_per_s': self.images / seconds, 'steps': self.steps,
                                                   'world_size': trainer.world_size}))


def write_image_folder(root: Path, classes: int = 4, per_class: int = 64, size: int = 64, seed: int = 0) -> Path:
    """Random RGB PNGs in root/{train,val}/<class>/ (ImageNet layout)."""
    rng = np.random.default_rng(seed)
    for split, count in (('train', per_class), ('val', 4)):
        for c in range(classes):
            folder = root / split / f'class{c}'
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f'{i}.png')
    return root


def run_config(root: Path, work: Path, processes: int, steps: int, batch_size: int, warmup: int) -> Dict[str, Any]:
    """The `vlm fit` config of one measurement."""
    trainer: Dict[str, Any] = {
        'accelerator': 'cpu', 'devices': processes, 'max_epochs': 1, 'limit_train_batches': steps + warmup,
        'limit_val_batches': 0, 'enable_progress_bar': False, 'enable_model_summary': False, 'logger': False,
        'default_root_dir': str(work / f'runs_{processes}'),
        'callbacks': [{'class_path': 'benchmarks.speed.ddp_scaling.Throughput',
                       'init_args': {'path': str(work / f'throughput_{processes}.json'), 'warmup': warmup}}],
    }
    if processes > 1:
        trainer['strategy'] = 'ddp'
    return {
        'seed_everything': 0, 'trainer': trainer,
        'model': {'class_path': 'vlm.tasks.ImageClassifier', 'init_args': {
            'encoder': 'vlm_vit_tiny_patch16_rope_rms',
            'encoder_kwargs': {'patch_size': 8, 'img_size': 64, 'depth': 4},
            'optimization': {'lr': 1e-4, 'warmup_epochs': 0}}},
        'data': {'class_path': 'vlm.data.ClassificationDataModule', 'init_args': {
            'root': str(root), 'image_size': 64, 'crop_pct': 1.0, 'batch_size': batch_size, 'num_workers': 0}},
    }


def measure(processes: int, steps: int, batch_size: int, threads: int, work: Path, root: Path,
            warmup: int = 3) -> float:
    """Images/s of `vlm fit` with `processes` processes (DDP when > 1), each with `threads` threads."""
    config = work / f'ddp_{processes}.yaml'
    config.write_text(yaml.safe_dump(run_config(root, work, processes, steps, batch_size, warmup)))
    # `python -m` in the repository root: the callback's module (benchmarks.speed.ddp_scaling) imports from there
    env = {**os.environ, 'OMP_NUM_THREADS': str(threads), 'MKL_NUM_THREADS': str(threads)}
    result = subprocess.run([sys.executable, '-m', 'vlm.cli', 'fit', '--config', str(config)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f'vlm fit with {processes} process(es) failed:\n{result.stderr[-3000:]}')
    return json.loads((work / f'throughput_{processes}.json').read_text())['images_per_s']


def scaling(processes: int = 2, steps: int = 30, batch_size: int = 16, threads: int = 1,
            work: Optional[Path] = None) -> Dict[str, float]:
    """{'1': images/s with one process, 'N': with N, 'ratio': N's / 1's}."""
    with tempfile.TemporaryDirectory() as directory:
        work = Path(work or directory)
        # enough images for every measured step of the largest run within one epoch
        per_class = -(-(steps + 3) * batch_size * processes // 4)
        root = write_image_folder(work / 'images', classes=4, per_class=per_class)
        single = measure(1, steps, batch_size, threads, work, root)
        multi = measure(processes, steps, batch_size, threads, work, root)
    return {'1': single, str(processes): multi, 'ratio': multi / single}


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--processes', type=int, default=2)
    parser.add_argument('--steps', type=int, default=30, help='timed steps (after 3 warm-up steps)')
    parser.add_argument('--batch-size', type=int, default=16, help='per process')
    parser.add_argument('--threads', type=int, default=1, help='OMP threads per process')
    args = parser.parse_args(argv)
    result = scaling(args.processes, args.steps, args.batch_size, args.threads)
    print(f"{os.cpu_count()} CPUs; {args.threads} thread(s) per process, batch {args.batch_size} per process")
    print(f"1 process: {result['1']:.1f} img/s; {args.processes} processes (DDP): {result[str(args.processes)]:.1f} "
          f"img/s; ratio {result['ratio']:.2f} (ideal {args.processes})")


if __name__ == '__main__':
    main()
