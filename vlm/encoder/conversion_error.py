"""How exact is `convert` (`vlm.encoder.conversion`)? Every supported pre-LN ViT family as a random timm source (no
download) with every tensor moved far from its initial value (norm weights and biases, LayerScale, tokens,
position embeddings, RoPE frequencies), so that a skipped conversion step would show, and the max |difference| of
its features and its conversion's. The tests check each family; the table is
`python -m benchmarks.experiments.conversion_error`.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import timm
import torch

from .conversion import convert

FAMILIES: List[Tuple[str, int]] = [  # (timm name, image size)
    ('vit_small_patch14_dinov2', 56), ('vit_small_patch14_reg4_dinov2', 56), ('deit_tiny_patch16_224', 64),
    ('deit3_small_patch16_224', 64), ('vit_base_patch16_clip_quickgelu_224', 64), ('vit_base_patch16_siglip_224', 64),
    ('vit_small_patch16_rope_mixed_224', 64), ('vit_small_patch16_rope_mixed_ape_224', 64),
]


def perturbed_source(name: str, size: int, **kwargs: Any) -> torch.nn.Module:
    """A randomly initialised timm source whose every tensor is far from its initial value."""
    torch.manual_seed(0)
    source = timm.create_model(name, pretrained=False, num_classes=0, dynamic_img_size=True, img_size=size,
                               **kwargs).eval()
    with torch.no_grad():
        for key, parameter in source.named_parameters():
            if 'norm' in key and key.endswith('weight'):
                parameter.copy_(1 + 0.2 * torch.randn_like(parameter))
            elif key.endswith('bias') or 'gamma' in key or 'freqs' in key or key in ('cls_token', 'pos_embed',
                                                                                          'reg_token'):
                parameter.copy_(0.2 * torch.randn_like(parameter))
    return source


@torch.no_grad()
def max_error(source: torch.nn.Module, target: torch.nn.Module, sizes: Sequence[Tuple[int, int]]) -> float:
    """Max |target - source| of `forward_features` (float32) over a batch of random images at each (height, width)."""
    errors = []
    for height, width in sizes:
        images = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(1))
        errors.append(float((target.forward_features(images) - source.forward_features(images)).abs().max()))
    return max(errors)


def conversion_errors(dinov2: Optional[str] = None) -> List[Dict[str, Any]]:
    """{source, sizes, error} per family of FAMILIES, at the source's size and a non-square other size; with
    `dinov2` (the folder of `vlm weights dinov2-small`) also the real DINOv2-small."""
    out = []
    for name, size in FAMILIES:
        source = perturbed_source(name, size)
        target, _ = convert(source, name)
        patch = source.patch_embed.patch_size[0]
        out.append(dict(source=f'{name} (random)', sizes=f'{size}, {size + 2 * patch}x{size - patch}',
                        error=max_error(source, target, [(size, size), (size + 2 * patch, size - patch)])))
    if dinov2:
        source = timm.create_model(f'local-dir:{dinov2}', pretrained=True, num_classes=0, dynamic_img_size=True).eval()
        target, _ = convert(source, 'vit_small_patch14_dinov2')
        out.append(dict(source=f'DINOv2-small, real ({dinov2})', sizes='224, 280x210',
                        error=max_error(source, target, [(224, 224), (280, 210)])))
    return out
