"""Training-step speed of the vlm encoder against timm's plain ViT of identical dimensions.

Measures images/s of a full training step (forward, backward, AdamW step; fp32) for each model in the same
process, alternating the models round by round so that machine noise hits all of them alike, and prints each
model's ratio to timm's plain `vit_small_patch16_224`. Also prints achieved FLOP/s (counted by
`torch.utils.flop_counter`) as a fraction of a matmul peak measured in the same run.

    python -m benchmarks.speed.encoder_speed [--batch-size 16] [--img-size 224] [--rounds 3] [--steps 3]
    python -m benchmarks.speed.encoder_speed --components    # vlm's hand-written pieces against timm's / torch's

`--components` times forward + backward of the two pieces vlm writes itself, each against the library piece it
would otherwise use, on ViT-S/16 activations (16, 197, 384), alternating: RMSNorm (`vlm FastRmsNorm` vs timm's
`RmsNorm`, `torch.nn.functional.rms_norm` and `LayerNorm`), and one block's attention with mixed 2D RoPE (vlm's
`RopeAttention` + `RotaryEmbedding2d` vs timm's `EvaAttention` and `AttentionRope` with `RotaryEmbeddingMixed`).
A piece is kept hand-written only where it wins.
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


class TorchRmsNorm(RmsNorm):
    """timm's `RmsNorm` (same parameters and state dict) computed by torch's fused `F.rms_norm`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.rms_norm(x, self.normalized_shape, self.weight, self.eps)


def with_torch_rms_norm(model: torch.nn.Module) -> torch.nn.Module:
    """`model` with each of vlm's `FastRmsNorm`s replaced by a `TorchRmsNorm` holding the same weight."""
    from vlm.layers.rms_norm import FastRmsNorm

    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is FastRmsNorm:
                replacement = TorchRmsNorm(child.normalized_shape[0], eps=child.eps)
                replacement.load_state_dict(child.state_dict())
                setattr(module, name, replacement)
    return model


def build_models() -> Dict[str, Callable[[], torch.nn.Module]]:
    """Model factories, reference first. All ViT-S/16: width 384, depth 12, 6 heads, 1000 classes."""
    return {
        REFERENCE: lambda: timm.create_model('vit_small_patch16_224'),
        'vlm_vit_small_patch16_rope_rms (mixed)': lambda: timm.create_model(
            'vlm_vit_small_patch16_rope_rms', rope_type='mixed'),
        'vlm_vit_small_patch16_rope_rms (axial)': lambda: timm.create_model(
            'vlm_vit_small_patch16_rope_rms', rope_type='axial'),
        'vlm_vit_small_patch16_rope_rms (mixed) + F.rms_norm': lambda: with_torch_rms_norm(timm.create_model(
            'vlm_vit_small_patch16_rope_rms', rope_type='mixed')),
        'timm vit_small_patch16_rope_mixed_224 + RmsNorm': lambda: timm.create_model(
            'vit_small_patch16_rope_mixed_224', norm_layer=RmsNorm, init_values=None),
        'timm vit_small_patch16_rope_224 (axial) + RmsNorm': lambda: timm.create_model(
            'vit_small_patch16_rope_224', norm_layer=RmsNorm, init_values=None),
        'timm vit_small_patch16_rope_mixed_224 + F.rms_norm': lambda: timm.create_model(
            'vit_small_patch16_rope_mixed_224', norm_layer=TorchRmsNorm, init_values=None),
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


def component_steps(batch: int = 16, tokens: int = 197, width: int = 384, heads: int = 6,
                    depth: int = 12) -> Dict[str, Dict[str, Callable[[], None]]]:
    """Forward + backward closures of each piece, grouped: {'RMSNorm': {...}, 'attention + mixed RoPE': {...}}."""
    from timm.layers.attention import AttentionRope
    from timm.layers.pos_embed_sincos import RotaryEmbeddingMixed
    from timm.models.eva import EvaAttention

    from vlm.layers.rms_norm import FastRmsNorm
    from vlm.layers.rope_2d import RotaryEmbedding2d
    from vlm.layers.rope_attention import RopeAttention

    torch.manual_seed(0)
    grid = int((tokens - 1) ** 0.5)
    x = torch.randn(batch, tokens, width)

    def step(module: torch.nn.Module, table: Callable[[], object] = None) -> Callable[[], None]:
        inputs = x.clone().requires_grad_(True)

        def run() -> None:
            out = module(inputs) if table is None else module(inputs, rope=table())
            out.sum().backward()
        return run

    vlm_rope = RotaryEmbedding2d(width // heads, heads, depth, 'mixed')
    timm_rope = RotaryEmbeddingMixed(width, depth, heads, temperature=10.0, grid_indexing='ij')
    return {
        'RMSNorm': {
            'vlm FastRmsNorm': step(FastRmsNorm(width)),
            'timm RmsNorm': step(RmsNorm(width)),
            'torch F.rms_norm': step(TorchRmsNorm(width)),
            'torch LayerNorm (reference: no RMS)': step(torch.nn.LayerNorm(width)),
        },
        'attention + mixed RoPE (one block)': {
            'vlm RopeAttention + RotaryEmbedding2d': step(RopeAttention(width, heads),
                                                          lambda: vlm_rope.get_embed((grid, grid))[0]),
            'timm EvaAttention + RotaryEmbeddingMixed': step(
                EvaAttention(width, heads, qkv_bias=True, num_prefix_tokens=1, scale_norm=False),
                lambda: timm_rope.get_embed((grid, grid))[0]),
            'timm AttentionRope + RotaryEmbeddingMixed': step(
                AttentionRope(width, heads, qkv_bias=True, num_prefix_tokens=1),
                lambda: timm_rope.get_embed((grid, grid))[0]),
        },
    }


def measure_components(rounds: int, repeats: int) -> None:
    """Print each piece's median fwd+bwd time and its ratio to the group's first (vlm's) piece."""
    for group, steps in component_steps().items():
        times = {name: [] for name in steps}
        for run in steps.values():
            run()
        for _ in range(rounds):
            for name, run in steps.items():
                start = time.perf_counter()
                for _ in range(repeats):
                    run()
                times[name].append((time.perf_counter() - start) / repeats * 1e3)
        first = statistics.median(next(iter(times.values())))
        print(f"{group}: forward + backward, (16, 197, 384), {torch.get_num_threads()} threads")
        for name, values in times.items():
            median = statistics.median(values)
            print(f"  {name:<48} {median:8.2f} ms  {median / first:6.2f}x vlm's")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--rounds', type=int, default=3, help='alternating rounds over all models')
    parser.add_argument('--steps', type=int, default=3, help='timed steps per model per round')
    parser.add_argument('--only', nargs='*', help='substrings selecting models besides the reference')
    parser.add_argument('--components', action='store_true', help='time RMSNorm and RoPE attention pieces instead')
    args = parser.parse_args()
    if args.components:
        measure_components(rounds=max(args.rounds, 5), repeats=10)
        return

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
