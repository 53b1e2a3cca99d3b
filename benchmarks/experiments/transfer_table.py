"""Does a pretrained encoder transfer? On the shapes classification tree and on scikit-learn's 8x8 handwritten digits
(upsampled), rows: a linear probe of the converted DINOv2-small (`vlm fit` with `freeze_encoder`, and scikit-learn's
logistic regression on the same frozen features as an independent reference), the fine-tuning recipe
(`configs/transfer/finetune_pretrained.yaml`) on the converted encoder and on timm's original DINOv2-small, each
over `--seeds` seeds, and the from-scratch recipe (`configs/shapes/classification.yaml`) stopped at the mean
fine-tuning wall time. Each run alone, one after another; prints a markdown table of val/acc1 and wall times.

    vlm weights dinov2-small --out weights/dinov2-small
    vlm convert local-dir:weights/dinov2-small --out weights/dinov2-small-rope-rms
    python -m benchmarks.experiments.transfer_table [--seeds 3] [--datasets shapes digits]

The digits are written as an ImageNet-style folder first (`--digits`, 80/20 split by a fixed permutation, 56 px
RGB); they train without horizontal flips (a mirrored digit is another glyph).
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from lightning.pytorch import Callback
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SIZE = 56  # 4 x 4 patches of 14
RECIPE = REPO / 'configs/transfer/finetune_pretrained.yaml'
SCRATCH = REPO / 'configs/shapes/classification.yaml'
PROBE_LR = ['--model.init_args.optimization.lr', '5e-4']  # x head_lr_scale 20: the head alone at 1e-2


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


class LastAccuracy(Callback):
    """Keeps val/acc1 of the last validation (not the sanity check)."""

    def __init__(self) -> None:
        self.accuracy = float('nan')

    def on_validation_epoch_end(self, trainer: Any, module: Any) -> None:
        if not trainer.sanity_checking:
            self.accuracy = float(trainer.callback_metrics['val/acc1'])


def fit(config: Path, dataset: Path, options: Sequence[str], out: Path, name: str) -> Tuple[float, float]:
    """`vlm fit --config config --data.root dataset *options`, in this process; (last val/acc1, fit seconds)."""
    from vlm.cli.lightning import VlmCLI

    cli = VlmCLI(args=['--config', str(config), '--data.init_args.root', str(dataset), *options,
                       '--trainer.enable_progress_bar', 'false', '--trainer.enable_checkpointing', 'false',
                       '--trainer.enable_model_summary', 'false',
                       '--trainer.logger.init_args.save_dir', str(out), '--trainer.logger.init_args.name', name],
                 run=False)
    record = LastAccuracy()
    cli.trainer.callbacks.append(record)
    start = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return record.accuracy, time.perf_counter() - start


def logistic_probe(encoder: str, dataset: Path) -> Tuple[float, float]:
    """scikit-learn's logistic regression on the frozen encoder's class token + mean patch token (eval transform,
    standardised), the best C of (0.1, 1, 10) on val: an upper reference for the linear probe. (val acc, seconds)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from vlm.data import ClassificationDataModule
    from vlm.encoder import create_encoder, encoder_normalization
    from vlm.encoder.pooling import pool_features

    start = time.perf_counter()
    model = create_encoder(encoder).eval()
    data = ClassificationDataModule(root=str(dataset), image_size=SIZE, crop_pct=1.0, batch_size=64,
                                    num_workers=2, normalization=encoder_normalization(encoder))
    data.setup('validate')
    data.datasets['train'] = type(data.datasets['val'])(
        data.path(data.train_dir), data.datasets['val'].transform, classes=data.classes)

    def features(split: str) -> Tuple[np.ndarray, np.ndarray]:
        loader = torch.utils.data.DataLoader(data.datasets[split], batch_size=64, num_workers=2,
                                             collate_fn=data.collate_fn)
        xs, ys = [], []
        with torch.no_grad():
            for batch in loader:
                xs.append(pool_features(model, model.forward_features(batch['images']), 'token+avg'))
                ys.append(batch['labels'])
        return torch.cat(xs).numpy(), torch.cat(ys).numpy()

    (x_train, y_train), (x_val, y_val) = features('train'), features('val')
    scaler = StandardScaler().fit(x_train)
    best = max(LogisticRegression(C=c, max_iter=2000).fit(scaler.transform(x_train), y_train)
               .score(scaler.transform(x_val), y_val) for c in (0.1, 1.0, 10.0))
    return float(best), time.perf_counter() - start


def table(dataset: Path, converted: str, original: str, seeds: Sequence[int], out: Path,
          steps: Optional[int] = None) -> List[Dict[str, Any]]:
    """The rows of one dataset (see the module docstring); `steps`: the recipe's max_steps instead of its own."""
    flip = [] if dataset.name != 'digits' else ['--data.init_args.hflip', '0']
    if steps:
        flip += ['--trainer.max_steps', str(steps), '--trainer.val_check_interval', str(steps)]
    rows: List[Dict[str, Any]] = []
    accuracy, seconds = logistic_probe(converted, dataset)
    rows.append(dict(recipe='linear probe: logistic regression (scikit-learn, best C on val)', encoder=converted,
                     accuracies=[accuracy], seconds=[seconds]))
    accuracy, seconds = fit(RECIPE, dataset, ['--model.init_args.encoder', converted,
                                              '--model.init_args.freeze_encoder', 'true', *PROBE_LR, *flip],
                            out, f'{dataset.name}_probe')
    rows.append(dict(recipe='linear probe: `vlm fit`, freeze_encoder', encoder=converted, accuracies=[accuracy],
                     seconds=[seconds]))
    fine_tunes = (('fine-tune (recipe), converted', converted), ('fine-tune (recipe), timm original', original))
    for label, encoder in fine_tunes:
        runs = [fit(RECIPE, dataset, ['--model.init_args.encoder', encoder, '--seed_everything', str(seed), *flip],
                    out, f"{dataset.name}_{label.split(', ')[-1].replace(' ', '_')}_seed{seed}") for seed in seeds]
        rows.append(dict(recipe=label, encoder=encoder, accuracies=[a for a, _ in runs], seconds=[s for _, s in runs]))
    budget = statistics.mean(rows[2]['seconds'])
    minutes, rest = divmod(int(round(budget)), 60)
    accuracy, seconds = fit(SCRATCH, dataset, ['--data.init_args.shapes_root', 'null',
                                               '--trainer.max_time', f'00:00:{minutes:02d}:{rest:02d}', *flip[:2]],
                            out, f'{dataset.name}_scratch')
    rows.append(dict(recipe='from scratch (shapes recipe), stopped at the fine-tune wall time', encoder='random init',
                     accuracies=[accuracy], seconds=[seconds]))
    return rows


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--converted', default='weights/dinov2-small-rope-rms', help='a `vlm convert` folder')
    parser.add_argument('--original', default='weights/dinov2-small', help="timm's DINOv2 folder (`vlm weights`)")
    parser.add_argument('--datasets', nargs='+', default=['shapes', 'digits'], choices=['shapes', 'digits'])
    parser.add_argument('--shapes', default='data/shapes/classification')
    parser.add_argument('--digits', default='data/digits')
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument('--max-steps', type=int, help="the recipe's steps instead of its own (a quick look)")
    parser.add_argument('--out', default='runs/transfer_table')
    args = parser.parse_args(argv)
    roots = {'shapes': Path(args.shapes), 'digits': Path(args.digits)}
    if 'digits' in args.datasets:
        write_digits(roots['digits'])
    results = {name: table(roots[name], f'local-dir:{args.converted}', f'local-dir:{args.original}',
                           range(args.seeds), Path(args.out), args.max_steps) for name in args.datasets}
    print(f'\n{SIZE} px, {torch.get_num_threads()} threads; fine-tune rows: mean over seeds (each seed)\n')
    print('| dataset | recipe | encoder | val/acc1 | wall (fit) |')
    print('| --- | --- | --- | --- | --- |')
    for name, rows in results.items():
        for row in rows:
            accuracies, seconds = row['accuracies'], row['seconds']
            each = f" ({', '.join(f'{a:.3f}' for a in accuracies)})" if len(accuracies) > 1 else ''
            print(f"| {name} | {row['recipe']} | {row['encoder']} | {statistics.mean(accuracies):.3f}{each} | "
                  f"{statistics.mean(seconds):.0f} s |")


if __name__ == '__main__':
    main()
