"""All benchmarks in one command: one markdown table of ratios, each against a reference measured in the same run,
with the machine it ran on.

| row | measured | reference |
| --- | --- | --- |
| encoder training step | vlm ViT-S/16 (RoPE mixed + RMSNorm), img/s | timm's plain `vit_small_patch16_224` |
| dataloader vs training step | shapes classification train loader, img/s | a training step of the tiny encoder, img/s |
| COCO evaluation | faster-coco-eval, evaluations/s | pycocotools |
| VLM decoding | VLM decode tokens/s | a bare `LlamaForCausalLM` with the same decoder and prefix |
| DDP scaling | `vlm fit` with 2 CPU processes (DDP), img/s | the same run with 1 process |
| pruned vs dense inference | forward passes/s of a pruned classifier | the same classifier dense |

Every ratio is measured / reference in throughput, so > 1 means faster than the reference. `--quick` shrinks
every measurement (minutes on 2 CPU cores; noisy); the default sizes take longer and are the ones to quote.
Each part is also a script of its own with its own options (`python -m benchmarks.speed.NAME` for encoder_speed,
data_speed, coco_eval_speed, generation_speed, ddp_scaling; the pruned models' accuracy as well as their speed:
`python -m benchmarks.experiments.pruning_table`).

    python -m benchmarks.speed.run_all [--quick] [--only encoder data coco decode ddp pruning] [--loader-workers 2]
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch

REPO = Path(__file__).resolve().parents[2]

PARTS = ('encoder', 'data', 'coco', 'decode', 'ddp', 'pruning')


@dataclass
class Row:
    """One line of the table: what was measured against what, both values, and their ratio."""
    name: str
    measured: str
    reference: str
    value: float
    reference_value: float
    unit: str
    goal: str = ''

    @property
    def ratio(self) -> float:
        return self.value / self.reference_value


def machine() -> str:
    """CPU model, cores, threads, GPU (if any) and library versions."""
    cpu = platform.processor() or 'unknown CPU'
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    import lightning
    import timm
    import transformers

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU used'
    return (f'{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads '
            f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), {gpu}; python {platform.python_version()}, "
            f'torch {torch.__version__}, timm {timm.__version__}, transformers {transformers.__version__}, '
            f'lightning {lightning.__version__}')


def encoder_rows(quick: bool) -> List[Row]:
    from benchmarks.speed.encoder_speed import REFERENCE, TrainStep, build_models, measure

    batch, rounds, steps = (8, 2, 1) if quick else (16, 3, 3)
    factories = build_models()
    name = 'vlm_vit_small_patch16_rope_rms (mixed)'
    torch.manual_seed(0)
    runs = {key: TrainStep(factories[key](), batch, 224) for key in (REFERENCE, name)}
    times = measure(runs, rounds, steps)
    value, reference = (batch / statistics.median(times[key]) for key in (name, REFERENCE))
    return [Row('encoder training step (fp32, 224 px)', f'vlm ViT-S/16 RoPE-mixed + RMSNorm, batch {batch}',
                'timm vit_small_patch16_224', value, reference, 'img/s', '~1 (parity)')]


def data_rows(quick: bool, workers: int) -> List[Row]:
    from benchmarks.speed.data_speed import loader_rate, train_step_rate
    from vlm.data import ClassificationDataModule, ensure_shapes

    root = REPO / 'data' / 'shapes'
    ensure_shapes(str(root))
    datamodule = ClassificationDataModule(root=str(root / 'classification'), image_size=64, crop_pct=1.0,
                                          num_workers=workers, batch_size=32)
    datamodule.setup('fit')
    delivered = loader_rate(datamodule.train_dataloader(), 8 if quick else 30, lambda b: len(b['images']))
    consumed = train_step_rate(64, 32, 8, steps=2 if quick else 5)
    return [Row('dataloader vs training step', f'shapes classification loader, {workers} workers, batch 32',
                'training step of ViT-Ti/8 at 64 px', delivered, consumed, 'img/s', '>= 3')]


def coco_rows(quick: bool) -> List[Row]:
    from benchmarks.speed.coco_eval_speed import synthetic_set
    from vlm.evaluation import evaluate_coco

    images = 500 if quick else 5000
    gt, results = synthetic_set(images, 100, 0)
    seconds = {}
    for backend in ('pycocotools', 'faster-coco-eval'):
        start = time.perf_counter()
        evaluate_coco(gt, results, 'bbox', backend)
        seconds[backend] = time.perf_counter() - start
    return [Row('COCO bbox evaluation', f'faster-coco-eval, {images} images x 100 detections', 'pycocotools',
                1 / seconds['faster-coco-eval'], 1 / seconds['pycocotools'], 'evals/s', '>= 4')]


def decode_rows(quick: bool) -> List[Row]:
    from benchmarks.speed.generation_speed import build_models, decode_rates

    torch.manual_seed(0)
    hidden, layers, tokens, rounds = (512, 4, 32, 3) if quick else (512, 4, 64, 5)
    vlm_model, bare, processor = build_models(hidden, layers, 224)
    rows = []
    for batch in ((1,) if quick else (1, 8)):
        rates = decode_rates(vlm_model, bare, processor, batch, tokens, rounds)
        rows.append(Row(f'VLM decoding, batch {batch}', f'VLM ({layers}x{hidden} Llama, ViT-S/16, {rates["prefix"]}-token '
                        f'prefix), {tokens} tokens', 'bare LlamaForCausalLM, same decoder and prefix',
                        rates['vlm'], rates['bare'], 'tok/s', '>= 0.95'))
    return rows


def ddp_rows(quick: bool) -> List[Row]:
    from benchmarks.speed.ddp_scaling import scaling

    result = scaling(processes=2, steps=8 if quick else 30, batch_size=16, threads=1)
    return [Row('DDP scaling (CPU, gloo)', '`vlm fit`, 2 processes x 1 thread, batch 16 each',
                'the same run, 1 process x 1 thread', result['2'], result['1'], 'img/s', '2 (ideal)')]


def pruning_rows(quick: bool) -> List[Row]:
    import timm
    import torch.nn.utils.prune as prune

    import vlm  # noqa: F401  (registers the encoders)
    from benchmarks.speed.timing import inference_times
    from vlm.encoder.sparsity import prunable_parameters, slim_mlp_channels

    torch.manual_seed(0)
    dense = timm.create_model('vlm_vit_tiny_patch16_rope_rms', patch_size=8, img_size=64, depth=6, num_classes=6)
    unstructured, channels = copy.deepcopy(dense), copy.deepcopy(dense)
    for module, name in prunable_parameters(unstructured, 'unstructured'):
        prune.l1_unstructured(module, name, amount=0.9)
        prune.remove(module, name)
    for module, name in prunable_parameters(channels, 'channels'):
        prune.ln_structured(module, name, amount=0.5, n=2, dim=0)
        prune.remove(module, name)
    for block in channels.blocks:  # the pruned channels' fc2 columns, as EncoderPruning zeroes them
        with torch.no_grad():
            block.mlp.fc2.weight[:, (block.mlp.fc1.weight == 0).all(dim=1)] = 0
    slim_mlp_channels(channels)
    images = torch.randn(32, 3, 64, 64)
    times = inference_times({'dense': dense, 'unstructured': unstructured, 'channels': channels}, images,
                            rounds=3 if quick else 9)
    setting = 'shapes classifier ViT-Ti/8 (6 blocks) at 64 px, batch 32, fp32'
    return [Row('pruned vs dense inference', f'90% unstructured zeros, dense kernels; {setting}', 'the dense model',
                1 / times['unstructured'], 1 / times['dense'], 'fwd/s', '~1 (no sparse kernels)'),
            Row('pruned vs dense inference', f'50% MLP channels pruned and removed; {setting}', 'the dense model',
                1 / times['channels'], 1 / times['dense'], 'fwd/s', '> 1')]


def markdown(rows: Sequence[Row], failures: Dict[str, str]) -> str:
    lines = ['| benchmark | measured | reference | measured value | reference value | ratio | goal |',
             '|---|---|---|---|---|---|---|']
    for row in rows:
        lines.append(f'| {row.name} | {row.measured} | {row.reference} | {row.value:.4g} {row.unit} | '
                     f'{row.reference_value:.4g} {row.unit} | **{row.ratio:.2f}** | {row.goal} |')
    for part, error in failures.items():
        lines.append(f'| {part} | failed: {error} | | | | | |')
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--quick', action='store_true', help='small sizes: a check that everything runs, noisy')
    parser.add_argument('--only', nargs='+', choices=PARTS, default=list(PARTS))
    parser.add_argument('--loader-workers', type=int, default=2, help='dataloader workers of the data benchmark')
    args = parser.parse_args(argv)
    parts: Dict[str, Callable[[], List[Row]]] = {
        'encoder': lambda: encoder_rows(args.quick),
        'data': lambda: data_rows(args.quick, args.loader_workers),
        'coco': lambda: coco_rows(args.quick),
        'decode': lambda: decode_rows(args.quick),
        'ddp': lambda: ddp_rows(args.quick),
        'pruning': lambda: pruning_rows(args.quick),
    }
    rows: List[Row] = []
    failures: Dict[str, str] = {}
    started = time.perf_counter()
    for part in args.only:
        start = time.perf_counter()
        print(f'[{part}] running...', file=sys.stderr, flush=True)
        try:
            rows += parts[part]()
        except Exception as error:  # one failing part still leaves the others' table
            traceback.print_exc()
            failures[part] = f'{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ""}'
        print(f'[{part}] {time.perf_counter() - start:.0f} s', file=sys.stderr, flush=True)
    mode = 'quick' if args.quick else 'full'
    print(f'\nMachine: {machine()}')
    print(f'Mode: {mode}, {time.perf_counter() - started:.0f} s in all. Ratio = measured / reference throughput '
          f'(> 1: faster than the reference), both measured in this run.\n')
    print(markdown(rows, failures))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
