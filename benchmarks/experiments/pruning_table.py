"""Sparsity against accuracy: fine-tune a trained classifier with its encoder pruned to 0 / 50 / 70 / 90 % and
print a markdown table of the measured sparsity, val acc1 / acc5 and inference time against the dense model.

Each row starts from the same checkpoint and fine-tunes for `--epochs` epochs with `vlm.callbacks.EncoderPruning`
(the 0 % row fine-tunes just as long without pruning: the dense reference). Sparsity is reached on the cubic
schedule by the start of the second-to-last epoch (one-shot when `--epochs` is 1 or 2), so the last epoch trains
at the final sparsity; then the model, its pruning made permanent, is validated. The sparsity column is counted
independently on the final weights (`vlm.encoder.sparsity.encoder_sparsity`). Inference time: forward passes of the whole
classifier on one validation batch (fp32, eval, inference mode), models alternating round by round, as the
median time of each over that of the dense fine-tuned model: unstructured zeros in dense tensors run at dense
speed (ratio ~1); `--mode channels` adds the time of the encoder with its zeroed MLP channels removed for real
(`vlm.encoder.sparsity.slim_mlp_channels`).

    python -m benchmarks.experiments.pruning_table --config configs/shapes/classification.yaml \
        --ckpt runs/shapes_classification/version_0/checkpoints/last.ckpt [--epochs 2] [--mode unstructured] \
        [--sparsities 0 0.5 0.7 0.9] [--out runs/pruning_table] [-- any vlm fit override, e.g. --trainer.precision 32]
"""
from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Dict, Optional, Sequence

import torch

from benchmarks.speed.timing import inference_times

DEFAULT_SPARSITIES = (0.0, 0.5, 0.7, 0.9)


def checkpoint_weights(path: str, from_ema: bool = False) -> Dict[str, torch.Tensor]:
    """The classifier's `model.*` tensors of a vlm checkpoint (from its EMA copy when `from_ema`)."""
    state = torch.load(path, map_location='cpu', weights_only=True)['state_dict']
    prefix = 'ema.module.' if from_ema else 'model.'
    weights = {f'model.{key[len(prefix):]}': value for key, value in state.items() if key.startswith(prefix)}
    if not weights:
        raise ValueError(f'{path}: no {prefix}* tensors (is it a vlm classification checkpoint?)')
    return weights


def fine_tune(config: str, ckpt: str, sparsity: float, mode: str, epochs: int, out: Path,
              overrides: Sequence[str], from_ema: bool) -> tuple:
    """Fine-tune from `ckpt` with the encoder pruned to `sparsity`; returns (task, val metrics, datamodule)."""
    from vlm.callbacks import EncoderPruning
    from vlm.cli.lightning import VlmCLI

    logger = ['--trainer.logger', 'lightning.pytorch.loggers.CSVLogger', '--trainer.logger.save_dir', str(out),
              '--trainer.logger.name', f'{mode}_{round(sparsity * 100):02d}']
    cli = VlmCLI(args=['--config', config, *overrides, '--trainer.max_epochs', str(epochs),
                       '--trainer.enable_progress_bar', 'false', *logger], run=False)
    model = cli.model
    missing, unexpected = model.load_state_dict(checkpoint_weights(ckpt, from_ema), strict=False)
    missing = [key for key in missing if key.startswith('model.')]
    if missing:
        raise ValueError(f'{ckpt} does not fit the config\'s model; missing: {missing[:5]}')
    if sparsity > 0:
        cli.trainer.callbacks.append(EncoderPruning(amount=sparsity, mode=mode, start_epoch=0,
                                                    end_epoch=max(0, epochs - 2)))
    if epochs > 0:
        cli.trainer.fit(model, datamodule=cli.datamodule)
    metrics = cli.trainer.validate(model, datamodule=cli.datamodule, verbose=False)[0]
    return model, metrics, cli.datamodule


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     usage='%(prog)s --config C --ckpt K [options] [-- vlm fit overrides]')
    parser.add_argument('--config', required=True, help='the classification config the checkpoint was trained with')
    parser.add_argument('--ckpt', required=True, help='a trained vlm classification checkpoint')
    parser.add_argument('--epochs', type=int, default=2, help='fine-tuning epochs per sparsity')
    parser.add_argument('--sparsities', type=float, nargs='+', default=list(DEFAULT_SPARSITIES))
    parser.add_argument('--mode', choices=('unstructured', 'channels'), default='unstructured')
    parser.add_argument('--from-ema', action='store_true', help="start from the checkpoint's EMA weights")
    parser.add_argument('--rounds', type=int, default=5, help='alternating timing rounds')
    parser.add_argument('--out', default='runs/pruning_table', help='where the fine-tuning runs log')
    args, overrides = parser.parse_known_args(argv)
    overrides = [o for o in overrides if o != '--']
    from vlm.encoder.sparsity import encoder_sparsity, slim_mlp_channels

    out = Path(args.out)
    sparsities = sorted(set([0.0, *args.sparsities]))  # the dense fine-tuned model is the timing reference
    rows = []
    for target in sparsities:
        print(f'--- fine-tuning at {target:.0%} {args.mode} sparsity, {args.epochs} epochs', flush=True)
        model, metrics, datamodule = fine_tune(args.config, args.ckpt, target, args.mode, args.epochs, out,
                                               overrides, args.from_ema)
        rows.append(dict(target=target, model=model.cpu().float(), metrics=metrics,
                         sparsity=encoder_sparsity(model.encoder_module(), args.mode)))
    images = next(iter(datamodule.val_dataloader()))['images'].float()
    models = {f"{row['target']:.2f}": row['model'] for row in rows}
    if args.mode == 'channels':
        for row in rows[1:]:
            slim = copy.deepcopy(row['model'])
            row['removed'] = slim_mlp_channels(slim.encoder_module())
            models[f"{row['target']:.2f} slim"] = slim
    times = inference_times(models, images, args.rounds)
    dense = times['0.00']

    print(f"\n{args.epochs} fine-tuning epochs per row from {args.ckpt}; {args.mode} pruning of the encoder's "
          f"{'Linear layers in its blocks' if args.mode == 'unstructured' else 'MLP hidden channels'}; inference: "
          f"batch {len(images)}, fp32, {torch.get_num_threads()} threads, time / dense fine-tuned model's time\n")
    slim_column = args.mode == 'channels'
    print('| target sparsity | measured sparsity | val/acc1 | val/acc5 | inference time vs dense |'
          + (' slimmed (channels removed) |' if slim_column else ''))
    print('|---|---|---|---|---|' + ('---|' if slim_column else ''))
    for row in rows:
        key = f"{row['target']:.2f}"
        cells = [f"{row['target']:.0%}", f"{row['sparsity']:.4f}", f"{row['metrics'].get('val/acc1', float('nan')):.4f}",
                 f"{row['metrics'].get('val/acc5', float('nan')):.4f}", f'{times[key] / dense:.3f}']
        if slim_column:
            cells.append(f"{times[key + ' slim'] / dense:.3f}" if key + ' slim' in times else '1.000')
        print('| ' + ' | '.join(cells) + ' |')


if __name__ == '__main__':
    main()
