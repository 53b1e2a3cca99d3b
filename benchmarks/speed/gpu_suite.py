"""The GPU suite: what only a GPU can measure, in one command, written to OUT/gpu_suite.json and OUT/gpu_suite.md.

| part | measured | reference (same run) |
| --- | --- | --- |
| encoder | bf16 training step, img/s and MFU, vlm ViT-S/16 and ViT-B/16 (RoPE + RMSNorm), eager and `compile_blocks` | timm's plain ViT of the same size |
| sparsity | 2:4 semi-structured encoder (`torch.sparse.to_sparse_semi_structured`): inference img/s; shapes classifier val/acc1 after a fine-tune with the 2:4 mask | the dense encoder; the dense classifier |
| strategies | `vlm fit` of `configs/coco/captioning_llama_deepspeed.yaml`'s model on shapes captions, a few steps under DeepSpeed ZeRO-2 and FSDP2: peak GPU memory | `benchmarks.speed.memory_estimate`'s model-state estimate for the same model |
| vqa | `configs/shapes/vqa.yaml` (from scratch) and `vqa_smollm2.yaml` (pretrained decoder) trained for `--vqa-minutes` each: val/vqa_acc | each other |

MFU: model FLOPs (counted by `torch.utils.flop_counter` on one step) per second over the bf16 dense peak: the
H200's 989 TFLOP/s, or on any other machine a bf16 matmul measured in the same run (so CPU figures are not MFU).

    python -m benchmarks.speed.gpu_suite --out runs/gpu_suite            # one H200: about 8 minutes
    python -m benchmarks.speed.gpu_suite --smoke --out /tmp/gpu_smoke    # tiny sizes on the CPU: the same code paths

`--smoke` runs every part end to end with tiny models, few steps and `--trainer.accelerator cpu`; what needs CUDA
(semi-structured kernels, DeepSpeed, FSDP2 on a GPU) is reported as skipped with the reason, so the GPU minutes
are spent measuring, not debugging. `--only encoder sparsity strategies vqa` runs a subset. A part that fails
writes its error into the table and the suite goes on.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from datetime import date
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from lightning.pytorch import Callback
from torch import nn
from torch.nn.utils import prune

from vlm.encoder.sparsity import semi_structured_mask, sparsity

REPO = Path(__file__).resolve().parents[2]

PARTS = ('encoder', 'sparsity', 'strategies', 'vqa')
H200_BF16_PEAK = 989e12  # dense bf16 tensor-core FLOP/s, NVIDIA H200 SXM
Row = Dict[str, Any]


def device() -> torch.device:
    return torch.device('cuda' if torch.cuda.is_available() else 'cpu')


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def bf16_peak() -> float:
    """The H200's bf16 peak on an H200; elsewhere a bf16 matmul measured now."""
    if torch.cuda.is_available() and 'H200' in torch.cuda.get_device_name():
        return H200_BF16_PEAK
    size = 4096 if torch.cuda.is_available() else 512
    a = torch.randn(size, size, device=device(), dtype=torch.bfloat16)
    for _ in range(3):
        a @ a
    synchronize()
    start = time.perf_counter()
    for _ in range(10):
        a @ a
    synchronize()
    return 2 * size ** 3 * 10 / (time.perf_counter() - start)


def timed(step: Callable[[], None], steps: int, warmup: int = 2) -> float:
    """Seconds per call of `step`, after `warmup` calls, synchronising the GPU."""
    for _ in range(warmup):
        step()
    synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize()
    return (time.perf_counter() - start) / steps


# -- encoder ---------------------------------------------------------------------------------------------------

def encoder_models(smoke: bool) -> Dict[str, Dict[str, Callable[[], nn.Module]]]:
    """{size: {name: factory}}, the timm reference first."""
    import timm

    import vlm.encoder  # noqa: F401  (registers the vlm encoders)

    if smoke:
        tiny = dict(img_size=64, depth=2)
        return {'tiny': {'timm vit_tiny_patch16_224': lambda: timm.create_model('vit_tiny_patch16_224', **tiny),
                         'vlm_vit_tiny_patch16_rope_rms': lambda: timm.create_model(
                             'vlm_vit_tiny_patch16_rope_rms', **tiny)}}
    return {size: {f'timm vit_{size}_patch16_224': lambda s=size: timm.create_model(f'vit_{size}_patch16_224'),
                   f'vlm_vit_{size}_patch16_rope_rms': lambda s=size: timm.create_model(
                       f'vlm_vit_{s}_patch16_rope_rms')}
            for size in ('small', 'base')}


def training_step(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> Callable[[], None]:
    """A bf16-autocast training step (forward, backward, AdamW) of a classifier."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=images.is_cuda)

    def step() -> None:
        with torch.autocast(images.device.type, dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(model(images), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def step_flops(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        nn.functional.cross_entropy(model(images), targets).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def encoder_rows(smoke: bool, compile_encoder: bool) -> List[Row]:
    from vlm.tasks.base import compile_blocks

    batch, size, steps = (4, 64, 2) if smoke else (128, 224, 10)
    peak = bf16_peak()
    rows = []
    for group, factories in encoder_models(smoke).items():
        generator = torch.Generator().manual_seed(0)
        images = torch.randn(batch, 3, size, size, generator=generator).to(device())
        targets = torch.randint(0, 1000, (batch,), generator=generator).to(device())
        reference_rate = None
        for name, factory in factories.items():
            variants = [('eager', False)] + ([('compile_blocks', True)] if compile_encoder else [])
            for variant, compiled in variants:
                model = factory().to(device()).train()
                flops = step_flops(model, images, targets)
                if compiled:
                    compile_blocks(model)
                seconds = timed(training_step(model, images, targets), steps)
                rate = batch / seconds
                reference_rate = reference_rate or rate
                rows.append(dict(part='encoder', name=f'{name} ({variant})', batch=batch, img_size=size,
                                 img_per_s=rate, ratio_to_timm=rate / reference_rate,
                                 mfu=flops / seconds / peak, peak_flops=peak))
                del model
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
    return rows


# -- 2:4 sparsity ----------------------------------------------------------------------------------------------

def semi_structured_linears(encoder: nn.Module) -> List[nn.Linear]:
    """The Linear layers of the blocks whose shapes the 2:4 kernels take (both sides multiples of 64)."""
    return [m for m in encoder.blocks.modules()
            if isinstance(m, nn.Linear) and m.in_features % 64 == 0 and m.out_features % 64 == 0]


def two_four_speed(smoke: bool) -> Row:
    """Inference img/s of a ViT-B/16 encoder with 2:4-pruned Linear layers in semi-structured form, against dense."""
    import timm

    import vlm.encoder  # noqa: F401

    name, batch, size = (('vlm_vit_tiny_patch16_rope_rms', 4, 64) if smoke
                         else ('vlm_vit_base_patch16_rope_rms', 128, 224))
    kwargs = dict(img_size=size, depth=2) if smoke else {}
    model = timm.create_model(name, **kwargs).to(device(), torch.bfloat16).eval()
    images = torch.randn(batch, 3, size, size, device=device(), dtype=torch.bfloat16)
    with torch.inference_mode():
        dense_seconds = timed(lambda: model(images), 3 if smoke else 20)
    linears = semi_structured_linears(model)
    for linear in linears:
        prune.custom_from_mask(linear, 'weight', semi_structured_mask(linear.weight))
        prune.remove(linear, 'weight')
    row = dict(part='sparsity', name=f'{name} 2:4 inference', batch=batch, img_size=size,
               pruned_linears=len(linears), dense_img_per_s=batch / dense_seconds)
    if not torch.cuda.is_available():
        return {**row, 'skipped': 'semi-structured sparse kernels need CUDA'}
    from torch.sparse import to_sparse_semi_structured

    for linear in linears:
        linear.weight = nn.Parameter(to_sparse_semi_structured(linear.weight.detach()), requires_grad=False)
    with torch.inference_mode():
        sparse_seconds = timed(lambda: model(images), 20)
    return {**row, 'sparse_img_per_s': batch / sparse_seconds, 'speedup': dense_seconds / sparse_seconds}


class TwoFourMask(Callback):
    """The encoder's block Linear layers pruned 2:4 (by magnitude) at fit start, the mask held through fine-tuning
    by `torch.nn.utils.prune`, made permanent at fit end."""

    def on_fit_start(self, trainer: Any, module: Any) -> None:
        for linear in semi_structured_linears(module.encoder_module()):
            prune.custom_from_mask(linear, 'weight', semi_structured_mask(linear.weight))

    def on_fit_end(self, trainer: Any, module: Any) -> None:
        for linear in semi_structured_linears(module.encoder_module()):
            prune.remove(linear, 'weight')


def metric_rows(metrics_csv: Path) -> List[Dict[str, str]]:
    with open(metrics_csv) as f:
        return list(csv.DictReader(f))


def last_value(metrics_csv: Path, key: str) -> Optional[float]:
    values = [float(r[key]) for r in metric_rows(metrics_csv) if r.get(key) not in (None, '')]
    return values[-1] if values else None


def shapes_args(shapes: Path, subfolder: str = '') -> List[str]:
    """Point a shapes config's datamodule at `shapes` (generated there first if missing)."""
    return ['--data.init_args.root', str(shapes / subfolder) if subfolder else str(shapes),
            '--data.init_args.shapes_root', str(shapes)]


def two_four_accuracy(smoke: bool, out: Path, accelerator: List[str], shapes: Path) -> Row:
    """A shapes classifier trained dense, then fine-tuned with the 2:4 mask: val/acc1 of both."""
    from vlm.cli.lightning import VlmCLI

    epochs, tune = (1, 1) if smoke else (6, 2)
    limits = ['--trainer.limit_train_batches', '2', '--trainer.limit_val_batches', '1'] if smoke else []
    common = ['--config', str(REPO / 'configs/shapes/classification.yaml'), *accelerator, *limits,
              *shapes_args(shapes, 'classification'),
              '--trainer.enable_progress_bar', 'false', '--trainer.enable_checkpointing', 'false',
              '--trainer.logger', 'lightning.pytorch.loggers.CSVLogger', '--trainer.logger.save_dir', str(out)]
    dense = VlmCLI(args=[*common, '--trainer.max_epochs', str(epochs), '--trainer.logger.name', 'dense'], run=False)
    dense.trainer.fit(dense.model, datamodule=dense.datamodule)
    dense_acc = dense.trainer.validate(dense.model, datamodule=dense.datamodule, verbose=False)[0]['val/acc1']
    masked = VlmCLI(args=[*common, '--trainer.max_epochs', str(tune), '--trainer.logger.name', 'two_four'], run=False)
    masked.model.load_state_dict(dense.model.state_dict())
    masked.trainer.callbacks.append(TwoFourMask())
    masked.trainer.fit(masked.model, datamodule=masked.datamodule)
    masked_acc = masked.trainer.validate(masked.model, datamodule=masked.datamodule, verbose=False)[0]['val/acc1']
    linears = semi_structured_linears(masked.model.encoder_module())
    return dict(part='sparsity', name='shapes classifier, 2:4 fine-tune', dense_epochs=epochs, masked_epochs=tune,
                dense_acc1=dense_acc, two_four_acc1=masked_acc,
                measured_sparsity=sparsity([(m, 'weight') for m in linears]))


# -- strategies and VQA: `vlm fit` in a subprocess, as a user runs it --------------------------------------------

def vlm_fit(args: Sequence[str], log: Path, timeout: float) -> float:
    """Run `python -m vlm.cli fit ARGS` in the repository root, its output into `log`; returns the wall seconds;
    raises on failure."""
    start = time.perf_counter()
    with open(log, 'w') as f:
        code = subprocess.run([sys.executable, '-m', 'vlm.cli', 'fit', *args], stdout=f, stderr=subprocess.STDOUT,
                              cwd=REPO, timeout=timeout).returncode
    if code:
        tail = log.read_text().strip().splitlines()[-1:] or ['']
        raise RuntimeError(f'vlm fit exited {code} ({log}): {tail[0]}')
    return time.perf_counter() - start


PEAK_MEMORY_CALLBACK = 'vlm.callbacks.PeakMemory'


SMALL_LLAMA = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                   num_key_value_heads=1)


def strategy_rows(smoke: bool, out: Path, accelerator: List[str], shapes: Path, decoder: Path) -> List[Row]:
    """The DeepSpeed config's model (ViT-B/16 + the SmolLM2 decoder, else a small random Llama) on shapes captions,
    a few steps under each strategy; peak memory (the PeakMemory callback) against the model-state estimate."""
    from benchmarks.speed.memory_estimate import model_state_gib

    pretrained = (decoder / 'config.json').is_file() and not smoke
    decoder_args = (['--model.init_args.decoder_path', str(decoder)] if pretrained
                    else ['--model.init_args.decoder', json.dumps(SMALL_LLAMA)])
    encoder, image_size = ('vlm_vit_tiny_patch16_rope_rms', 64) if smoke else ('vlm_vit_base_patch16_rope_rms', 224)
    encoder_args = ['--model.init_args.encoder', encoder, '--model.init_args.image_size', str(image_size)]
    if smoke:
        encoder_args += ['--model.init_args.encoder_kwargs', json.dumps(dict(depth=2, img_size=64))]
    strategies = {'ZeRO-2': ['--trainer.strategy', 'deepspeed_stage_2'],
                  'FSDP2': ['--trainer.strategy', 'lightning.pytorch.strategies.ModelParallelStrategy']}
    rows = []
    for name, strategy in strategies.items():
        if not torch.cuda.is_available():
            rows.append(dict(part='strategies', name=name, skipped=f'{name} runs on CUDA GPUs; ran the same command '
                                                                    'with the auto strategy'))
            strategy = ['--trainer.strategy', 'auto']  # the same command otherwise, so the config path is exercised
        metrics = out / 'strategies' / name
        args = ['--config', str(REPO / 'configs/coco/captioning_llama_deepspeed.yaml'), *strategy, *accelerator,
                '--trainer.devices', '1', '--trainer.max_steps', '2' if smoke else '20',
                '--trainer.log_every_n_steps', '1', '--trainer.limit_val_batches', '0',
                '--trainer.enable_checkpointing', 'false', '--trainer.logger.init_args.save_dir', str(metrics),
                '--trainer.callbacks+', PEAK_MEMORY_CALLBACK, *decoder_args, *encoder_args,
                *shapes_args(shapes),
                '--data.init_args.batch_size', '2' if smoke else '32', '--data.init_args.num_workers', '2',
                '--data.init_args.train_captions', 'annotations/captions_train.json',
                '--data.init_args.val_captions', 'annotations/captions_val.json',
                '--data.init_args.train_images', 'images/train', '--data.init_args.val_images', 'images/val']
        seconds = vlm_fit(args, out / f'strategy_{name}.log', timeout=300)
        peak = max((last_value(p, 'peak_memory_gib') or 0.0) for p in metrics.rglob('metrics.csv'))
        dims = (json.loads((decoder / 'config.json').read_text()) if pretrained else
                {**SMALL_LLAMA, 'vocab_size': 1024, 'tie_word_embeddings': True})
        on_gpu = torch.cuda.is_available()
        dims = {k: dims[k] for k in (*SMALL_LLAMA, 'vocab_size', 'tie_word_embeddings')}
        estimate = model_state_gib(name if on_gpu else 'DDP', encoder, dims, 2, image_size, ('projector', 'decoder'))
        rows.append(dict(part='strategies', name=f'{name} run' if on_gpu else f'{name} command, auto strategy',
                         wall_s=seconds, peak_memory_gib=peak, model_state_estimate_gib=estimate))
    return rows


def vqa_rows(smoke: bool, out: Path, accelerator: List[str], minutes: float, shapes: Path,
             decoder: Path) -> List[Row]:
    """Each shapes VQA config for a fixed wall time on this device: the accuracy it reaches."""
    configs = {'from scratch': 'configs/shapes/vqa.yaml', 'pretrained decoder': 'configs/shapes/vqa_smollm2.yaml'}
    rows = []
    for name, config in configs.items():
        pretrained = []
        if 'smollm2' in config:
            if not (decoder / 'config.json').is_file():
                rows.append(dict(part='vqa', name=name, skipped=f'no decoder folder {decoder} (vlm weights ...)'))
                continue
            pretrained = ['--model.init_args.decoder_path', str(decoder)]
        save = out / 'vqa' / Path(config).stem
        limit = f'00:00:{int(minutes):02d}:{int(minutes % 1 * 60):02d}'
        limits = (['--trainer.max_epochs', '1', '--trainer.limit_train_batches', '2', '--trainer.limit_val_batches',
                   '1', '--trainer.num_sanity_val_steps', '0'] if smoke  # the epoch ends, so validation runs
                  else ['--trainer.max_time', limit, '--trainer.max_epochs', '1000', '--trainer.max_steps', '-1'])
        seconds = vlm_fit(['--config', str(REPO / config), *accelerator, *limits, *shapes_args(shapes),
                           *pretrained, '--trainer.enable_checkpointing',
                           'false', '--trainer.logger.init_args.save_dir', str(save)],
                          out / f'vqa_{Path(config).stem}.log', timeout=60 * minutes + 600)
        csvs = sorted(save.rglob('metrics.csv'))
        rows.append(dict(part='vqa', name=name, config=config, wall_s=seconds,
                         vqa_acc=last_value(csvs[-1], 'val/vqa_acc'),
                         vqa_acc_other=last_value(csvs[-1], 'val/vqa_acc/other'),
                         last_logged_step=int(last_value(csvs[-1], 'step') or 0)))
    return rows


# -- report ----------------------------------------------------------------------------------------------------

def machine() -> str:
    if torch.cuda.is_available():
        return f'{torch.cuda.get_device_name()} (torch {torch.__version__}, CUDA {torch.version.cuda})'
    return f'CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores (torch {torch.__version__})'


def markdown(rows: List[Row], header: str) -> str:
    lines = [header, '', '| part | name | figures |', '| --- | --- | --- |']
    for row in rows:
        figures = ', '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}' for k, v in row.items()
                            if k not in ('part', 'name'))
        lines.append(f"| {row['part']} | {row['name']} | {figures} |")
    return '\n'.join(lines) + '\n'


def run(parts: Sequence[str], smoke: bool, out: Path, compile_encoder: bool, vqa_minutes: float,
        shapes: Path, decoder: Path) -> List[Row]:
    out.mkdir(parents=True, exist_ok=True)
    accelerator = ['--trainer.accelerator', 'gpu' if torch.cuda.is_available() else 'cpu']
    if not torch.cuda.is_available():
        accelerator += ['--trainer.precision', 'bf16-mixed']
    jobs: Dict[str, Callable[[], List[Row]]] = {
        'encoder': lambda: encoder_rows(smoke, compile_encoder),
        'sparsity': lambda: [two_four_speed(smoke), two_four_accuracy(smoke, out / 'sparsity', accelerator, shapes)],
        'strategies': lambda: strategy_rows(smoke, out, accelerator, shapes, decoder),
        'vqa': lambda: vqa_rows(smoke, out, accelerator, vqa_minutes, shapes, decoder),
    }
    rows: List[Row] = []
    for part in parts:
        start = time.perf_counter()
        print(f'--- {part}', flush=True)
        try:
            rows.extend(jobs[part]())
        except Exception as error:  # noqa: BLE001  (one part's failure is a row; the suite goes on)
            traceback.print_exc()
            rows.append(dict(part=part, name='FAILED', error=f'{type(error).__name__}: {error}'))
        print(f'--- {part}: {time.perf_counter() - start:.0f} s', flush=True)
    header = f"GPU suite{' (smoke)' if smoke else ''}, {date.today()}, {machine()}"
    (out / 'gpu_suite.json').write_text(json.dumps(dict(header=header, rows=rows), indent=1))
    (out / 'gpu_suite.md').write_text(markdown(rows, header))
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default='runs/gpu_suite')
    parser.add_argument('--smoke', action='store_true', help='tiny sizes on any device: the code paths only')
    parser.add_argument('--only', nargs='+', choices=PARTS, default=list(PARTS))
    parser.add_argument('--no-compile', action='store_true', help='skip the compile_blocks rows')
    parser.add_argument('--vqa-minutes', type=float, default=1.5, help='training time per VQA config')
    parser.add_argument('--shapes', default=str(REPO / 'data/shapes'), help='the shapes dataset (generated if missing)')
    parser.add_argument('--decoder', default=str(REPO / 'weights/smollm2-135m-instruct'),
                        help='the SmolLM2 folder of `vlm weights smollm2-135m-instruct` (skipped if missing)')
    args = parser.parse_args(argv)
    rows = run(args.only, args.smoke, Path(args.out), not args.no_compile, args.vqa_minutes, Path(args.shapes),
               Path(args.decoder))
    print((Path(args.out) / 'gpu_suite.md').read_text())
    return 1 if any(row['name'] == 'FAILED' for row in rows) else 0


if __name__ == '__main__':
    sys.exit(main())
