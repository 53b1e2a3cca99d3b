"""Training-step speed of the vlm encoder against timm's plain ViT of identical dimensions.

Measures images/s of a full training step (forward, backward, AdamW step; fp32) for each model in the same
process, alternating the models round by round so that machine noise hits all of them alike, and prints each
model's ratio to timm's plain `vit_small_patch16_224`. Also prints achieved FLOP/s (counted by
`torch.utils.flop_counter`) as a fraction of a matmul peak measured in the same run.

    python benchmarks/encoder_speed.py [--batch-size 16] [--img-size 224] [--rounds 3] [--steps 3]
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Dict, List

import timm
import torch
from timm.layers import RmsNorm
from torch.utils.flop_counter import FlopCounterMode

import vlm  # noqa: F401  (registers the vlm encoders)

REFERENCE = 'timm vit_small_patch16_224 (plain, LayerNorm, abs pos)'


def build_models() -> Dict[str, Callable[[], torch.nn.Module]]:
    """Model factories, reference first. All ViT-S/16: width 384, depth 12, 6 heads, 1000 classes."""
    return {
        REFERENCE: lambda: timm.create_model('vit_small_patch16_224'),
        'vlm_vit_small_patch16_rope_rms (mixed)': lambda: timm.create_model(
            'vlm_vit_small_patch16_rope_rms', rope_type='mixed'),
        'vlm_vit_small_patch16_rope_rms (axial)': lambda: timm.create_model(
            'vlm_vit_small_patch16_rope_rms', rope_type='axial'),
        'timm vit_small_patch16_rope_mixed_224 + RmsNorm': lambda: timm.create_model(
            'vit_small_patch16_rope_mixed_224', norm_layer=RmsNorm, init_values=None),
        'timm vit_small_patch16_rope_224 (axial) + RmsNorm': lambda: timm.create_model(
            'vit_small_patch16_rope_224', norm_layer=RmsNorm, init_values=None),
    }


class TrainStep:
    """One model with its optimizer and a fixed batch; `__call__` runs one training step."""

    def __init__(self, model: torch.nn.Module, batch_size: int, img_size: int) -> None:
        self.model = model.train()
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randn(batch_size, 3, img_size, img_size, generator=generator)
        self.targets = torch.randint(0, 1000, (batch_size,), generator=generator)

    def __call__(self) -> None:
        loss = torch.nn.functional.cross_entropy(self.model(self.images), self.targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def flops(self) -> int:
        with FlopCounterMode(display=False) as counter:
            loss = torch.nn.functional.cross_entropy(self.model(self.images), self.targets)
            loss.backward()
        self.optimizer.zero_grad(set_to_none=True)
        return counter.get_total_flops()


def measure(steps: Dict[str, TrainStep], rounds: int, steps_per_round: int) -> Dict[str, List[float]]:
    """Seconds per training step of each model, one value per round; models alternate within each round."""
    for step in steps.values():  # warm-up: allocator, kernels, first optimizer state
        step()
    times: Dict[str, List[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(steps_per_round):
                step()
            times[name].append((time.perf_counter() - start) / steps_per_round)
    return times


def matmul_peak(size: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of a large fp32 matmul on this machine, measured now."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(2):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size ** 3 * repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--rounds', type=int, default=3, help='alternating rounds over all models')
    parser.add_argument('--steps', type=int, default=3, help='timed steps per model per round')
    parser.add_argument('--only', nargs='*', help='substrings selecting models besides the reference')
    args = parser.parse_args()

    torch.manual_seed(0)
    factories = build_models()
    if args.only:
        factories = {k: v for k, v in factories.items() if k == REFERENCE or any(s in k for s in args.only)}
    steps = {name: TrainStep(make(), args.batch_size, args.img_size) for name, make in factories.items()}
    times = measure(steps, args.rounds, args.steps)

    peak = matmul_peak()
    print(f"torch {torch.__version__}, timm {timm.__version__}, {torch.get_num_threads()} threads, "
          f"batch {args.batch_size}, {args.img_size}px, fp32, matmul peak {peak / 1e9:.1f} GFLOP/s")
    reference = statistics.median(times[REFERENCE])
    header = f"{'model':<52} {'img/s':>8} {'ratio':>7} {'GFLOP/s':>8} {'of peak':>8}"
    print(header)
    print('-' * len(header))
    for name, step in steps.items():
        seconds = statistics.median(times[name])
        achieved = step.flops() / seconds
        print(f"{name:<52} {args.batch_size / seconds:>8.2f} {reference / seconds:>7.3f} "
              f"{achieved / 1e9:>8.1f} {achieved / peak:>8.1%}")


if __name__ == '__main__':
    main()
