"""Exact conversion of a pre-LN ViT into the vlm RoPE / RMSNorm encoder (Jiang et al., "Pre-RMSNorm and
Pre-CRMSNorm Transformers: Equivalent and Efficient Pre-LN Transformers", NeurIPS 2023).

Every reader of the residual stream is a LayerNorm, which ignores a constant added to all channels; so the weights
that write to the stream (patch embedding, class / register tokens, position embedding, each block's attention
output and MLP output, LayerScale folded in first) are centred, C = I - 11^T / d, and the stream is zero-mean at
every token. On a zero-mean stream LayerNorm(x) = RMSNorm(x) * w + b: each block norm's bias folds into the bias
of the Linear that reads it (qkv, fc1), and the final norm keeps its bias as an explicit constant on the output
features (`RmsNormWithBias`). Mixed RoPE with all frequencies zero is the identity rotation, so a source without
RoPE keeps its absolute position embedding (as EVA-02 does beside RoPE) and starts the frequencies at zero
(fine-tuning learns them); a source with mixed RoPE (timm's Naver `vit_*_rope_mixed_*`) keeps its own.

Supported, as timm builds them: `VisionTransformer` (DeiT, DeiT-III, DINOv2 with LayerScale and registers, CLIP
image towers with their pre-transformer norm, SigLIP) and `Eva` with mixed RoPE (the Naver RoPE ViTs). Refused
with one message: post-norm blocks, q/k norms, SwiGLU or scaled MLPs, an fc_norm after pooling, distillation
tokens, axial ('cat') RoPE. The attention-pooling head of SigLIP (`global_pool='map'`) is not carried over: the
converted encoder gives the same token features and pools them by average.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import timm
import torch
from torch import nn

from vlm.errors import InputError

from .vit_rope_rms import VisionTransformerRopeRms

BlockWeights = Dict[str, torch.Tensor]
WIDTHS = {192: 'vlm_vit_tiny_patch16_rope_rms', 384: 'vlm_vit_small_patch16_rope_rms',
          768: 'vlm_vit_base_patch16_rope_rms', 1024: 'vlm_vit_large_patch16_rope_rms'}


@dataclass
class SourceViT:
    """What a source ViT is, read off the module (the target is built from this)."""

    embed_dim: int
    depth: int
    num_heads: int
    patch_size: int
    img_size: Tuple[int, int]
    class_token: bool
    num_reg_tokens: int
    no_embed_class: bool
    has_pos_embed: bool
    norm_eps: float
    act_layer: str
    mlp_ratio: float
    pre_norm: bool
    global_pool: str
    num_classes: int
    rope_freqs: Optional[torch.Tensor]  # (2, depth, heads, head_dim/2) as timm's [f_x, f_y], or None


def _refuse(name: str, why: str) -> InputError:
    return InputError(f'cannot convert {name} exactly: {why}')


def _activation_name(module: nn.Module) -> str:
    kind = type(module).__name__
    if kind == 'GELU':
        return 'gelu_tanh' if getattr(module, 'approximate', 'none') == 'tanh' else 'gelu'
    names = {'QuickGELU': 'quick_gelu', 'GELUTanh': 'gelu_tanh', 'SiLU': 'silu', 'ReLU': 'relu'}
    if kind not in names:
        raise _refuse('this ViT', f'its MLP activation {kind} has no timm name vlm knows')
    return names[kind]


def describe(source: nn.Module, name: str = 'the source') -> SourceViT:
    """Read a timm VisionTransformer or Eva, refusing what cannot be converted exactly."""
    kind = type(source).__name__
    if getattr(source, 'dist_token', None) is not None:
        raise _refuse(name, 'a distillation token (a second head on its own prefix token)')
    if kind not in ('VisionTransformer', 'Eva'):
        raise _refuse(name, f'a {kind}, not a timm VisionTransformer or Eva')
    block = source.blocks[0]
    if type(block).__name__ not in ('Block', 'EvaBlock'):
        raise _refuse(name, f'its blocks are {type(block).__name__} (post-norm or parallel blocks)')
    if not isinstance(getattr(source, 'fc_norm', nn.Identity()), nn.Identity):
        raise _refuse(name, 'a norm after pooling (fc_norm) reads a pooled stream, not the token stream')
    attn = block.attn
    if not (isinstance(getattr(attn, 'q_norm', nn.Identity()), nn.Identity)
            and isinstance(getattr(attn, 'norm', nn.Identity()), nn.Identity)):
        raise _refuse(name, 'q/k norms or a norm inside the attention')
    if not hasattr(attn, 'qkv') or not hasattr(block.mlp, 'fc1') or not isinstance(
            getattr(block.mlp, 'norm', nn.Identity()), nn.Identity):
        raise _refuse(name, 'unfused q / k / v, a SwiGLU or a normalised MLP')
    rope = getattr(source, 'rope', None)
    if rope is not None and not getattr(source, 'rope_mixed', False):
        raise _refuse(name, 'axial (cat) RoPE: only mixed RoPE has a vlm counterpart with the same angles')
    for norm in (block.norm1, block.norm2, source.norm):
        if type(norm).__name__ != 'LayerNorm':
            raise _refuse(name, f'a {type(norm).__name__} where a LayerNorm is expected')
    pre_norm = not isinstance(source.norm_pre, nn.Identity)
    patch = source.patch_embed.patch_size
    return SourceViT(
        embed_dim=source.embed_dim, depth=len(source.blocks), num_heads=attn.num_heads, patch_size=int(patch[0]),
        img_size=tuple(int(s) for s in source.patch_embed.img_size), class_token=source.cls_token is not None,
        num_reg_tokens=source.reg_token.shape[1] if getattr(source, 'reg_token', None) is not None else 0,
        no_embed_class=bool(source.no_embed_class), has_pos_embed=source.pos_embed is not None,
        norm_eps=float(block.norm1.eps), act_layer=_activation_name(block.mlp.act),
        mlp_ratio=block.mlp.fc1.out_features / source.embed_dim, pre_norm=pre_norm,
        global_pool='avg' if source.global_pool == 'map' else source.global_pool,
        num_classes=source.num_classes, rope_freqs=rope.freqs.detach().clone() if rope is not None else None)


def _blocks(source: nn.Module) -> List[BlockWeights]:
    """Each block's tensors under common names (timm's Block and EvaBlock name LayerScale differently)."""
    out = []
    for block in source.blocks:
        scale1 = getattr(getattr(block, 'ls1', None), 'gamma', None)
        scale2 = getattr(getattr(block, 'ls2', None), 'gamma', None)
        scale1 = getattr(block, 'gamma_1', None) if scale1 is None else scale1
        scale2 = getattr(block, 'gamma_2', None) if scale2 is None else scale2
        ones = torch.ones(block.norm1.weight.shape[0])
        out.append({
            'norm1.w': block.norm1.weight, 'norm1.b': block.norm1.bias,
            'qkv.W': block.attn.qkv.weight, 'qkv.b': _bias(block.attn.qkv),
            'proj.W': block.attn.proj.weight, 'proj.b': _bias(block.attn.proj),
            'scale1': ones if scale1 is None else scale1,
            'norm2.w': block.norm2.weight, 'norm2.b': block.norm2.bias,
            'fc1.W': block.mlp.fc1.weight, 'fc1.b': _bias(block.mlp.fc1),
            'fc2.W': block.mlp.fc2.weight, 'fc2.b': _bias(block.mlp.fc2),
            'scale2': ones if scale2 is None else scale2,
        })
    return out


def _bias(linear: nn.Linear) -> torch.Tensor:
    return linear.bias if linear.bias is not None else torch.zeros(linear.out_features)


def centre(tensor: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """C applied along `dim` (the channels a tensor writes into the stream): subtract their mean."""
    return tensor - tensor.mean(dim=dim, keepdim=True)


def target_model_args(source: SourceViT) -> Dict[str, Any]:
    """The JSON-serialisable arguments of the vlm encoder that the conversion fills."""
    return {
        'img_size': list(source.img_size), 'patch_size': source.patch_size, 'embed_dim': source.embed_dim,
        'depth': source.depth, 'num_heads': source.num_heads, 'mlp_ratio': source.mlp_ratio,
        'class_token': source.class_token, 'num_reg_tokens': source.num_reg_tokens,
        'no_embed_class': source.no_embed_class, 'use_abs_pos_emb': source.has_pos_embed,
        'rope_type': 'mixed', 'rope_init': 'random' if source.rope_freqs is not None else 'zero',
        'norm_eps': source.norm_eps, 'act_layer': source.act_layer, 'final_norm_bias': True,
        'pre_norm': 'rmsnorm_linear' if source.pre_norm else 'none', 'global_pool': source.global_pool,
        'use_fc_norm': False, 'num_classes': source.num_classes, 'init_values': None, 'qkv_bias': True,
        'dynamic_img_size': True,
    }


@torch.no_grad()
def converted_state_dict(source: nn.Module) -> Dict[str, torch.Tensor]:
    """The vlm encoder's state dict equal in function to `source` (see the module docstring)."""
    state: Dict[str, torch.Tensor] = {}
    if source.norm_pre is not None and not isinstance(source.norm_pre, nn.Identity):
        # CLIP: LayerNorm(x) = w * rms(Cx) + b starts the stream; its output is centred by the Linear after it
        weight, bias = source.norm_pre.weight, source.norm_pre.bias
        state['norm_pre.proj.weight'] = centre(torch.diag(weight), dim=0)
        state['norm_pre.proj.bias'] = centre(bias)
    state['patch_embed.proj.weight'] = centre(source.patch_embed.proj.weight, dim=0)
    if source.patch_embed.proj.bias is not None:
        state['patch_embed.proj.bias'] = centre(source.patch_embed.proj.bias)
    for name in ('cls_token', 'reg_token', 'pos_embed'):
        tensor = getattr(source, name, None)
        if tensor is not None:
            state[name] = centre(tensor)
    for i, block in enumerate(_blocks(source)):
        prefix = f'blocks.{i}.'
        state[prefix + 'norm1.weight'] = block['norm1.w'].clone()
        state[prefix + 'attn.qkv.weight'] = block['qkv.W'].clone()
        state[prefix + 'attn.qkv.bias'] = block['qkv.b'] + block['qkv.W'] @ block['norm1.b']
        state[prefix + 'attn.proj.weight'] = centre(block['scale1'][:, None] * block['proj.W'], dim=0)
        state[prefix + 'attn.proj.bias'] = centre(block['scale1'] * block['proj.b'])
        state[prefix + 'norm2.weight'] = block['norm2.w'].clone()
        state[prefix + 'mlp.fc1.weight'] = block['fc1.W'].clone()
        state[prefix + 'mlp.fc1.bias'] = block['fc1.b'] + block['fc1.W'] @ block['norm2.b']
        state[prefix + 'mlp.fc2.weight'] = centre(block['scale2'][:, None] * block['fc2.W'], dim=0)
        state[prefix + 'mlp.fc2.bias'] = centre(block['scale2'] * block['fc2.b'])
    state['norm.weight'] = source.norm.weight.clone()
    state['norm.bias'] = source.norm.bias.clone()
    rope = getattr(source, 'rope', None)
    if rope is not None:
        state['rope.freqs'] = rope.freqs.flip(0).clone()  # timm stores [f_x, f_y], vlm [f_y, f_x] (row, column)
    head = getattr(source, 'head', None)
    if isinstance(head, nn.Linear):
        state['head.weight'], state['head.bias'] = head.weight.clone(), head.bias.clone()
    return state


def architecture_for(embed_dim: int) -> str:
    """The registered vlm variant a converted encoder is named after (its model_args say the rest)."""
    return WIDTHS.get(embed_dim, 'vlm_vit_base_patch16_rope_rms')


def convert(source: nn.Module, name: str = 'the source') -> Tuple[VisionTransformerRopeRms, Dict[str, Any]]:
    """(vlm encoder whose outputs equal `source`'s, its model_args). The target's every tensor is filled; its
    pretrained config keeps the source's preprocessing (mean, std, input size, interpolation, crop)."""
    described = describe(source, name)
    args = target_model_args(described)
    target = timm.create_model(architecture_for(described.embed_dim), pretrained=False, **args)
    source_cfg = getattr(source, 'pretrained_cfg', None) or {}
    for key in ('mean', 'std', 'input_size', 'interpolation', 'crop_pct', 'crop_mode'):
        if key in source_cfg:
            target.pretrained_cfg[key] = source_cfg[key]
    state = converted_state_dict(source)
    if described.rope_freqs is None:
        state['rope.freqs'] = torch.zeros_like(target.rope.freqs)  # the identity rotation
    missing, unexpected = target.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise _refuse(name, f'the target does not take every tensor (missing {missing}, unexpected {unexpected})')
    return target.eval(), args


def load_source(source: str, weights: Optional[str] = None) -> nn.Module:
    """A timm source ViT: a `local-dir:` folder (its weights), or a timm name with a local weights file read by
    timm's own loader (`pretrained_cfg_overlay=dict(file=...)`, which also maps original DINOv2 / CLIP / DeiT
    checkpoint formats). Built with `dynamic_img_size=True`, so it runs at the sizes the target will."""
    if source.startswith('local-dir:'):
        if weights:
            raise InputError('give --weights with a timm name, not with a local-dir: folder (it has its own)')
        return timm.create_model(source, pretrained=True, dynamic_img_size=True).eval()
    if not weights:
        raise InputError(f'{source}: give the weights file (--weights FILE); nothing is downloaded')
    try:
        return timm.create_model(source, pretrained=True, pretrained_cfg_overlay=dict(file=weights),
                                 dynamic_img_size=True).eval()
    except RuntimeError as error:
        raise InputError(f'{source} with {weights}: {error}') from None


@torch.no_grad()
def max_difference(source: nn.Module, target: nn.Module, sizes: Tuple[int, ...]) -> float:
    """The largest |source - target| of the final features (normed tokens) on random images of `sizes` px."""
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for size in sizes:
        images = torch.randn(2, 3, size, size, generator=generator)
        worst = max(worst, float((source.forward_features(images) - target.forward_features(images)).abs().max()))
    return worst


def write_converted(source: nn.Module, out: str, name: str = 'the source') -> Tuple[Any, float]:
    """Convert `source`, write a timm folder (config.json naming the vlm architecture with its model_args,
    model.safetensors; `timm.models.save_for_hf`), load it back through `local-dir:` and return (the loaded
    encoder, the largest feature difference from `source` at its own size and at 1.5 times it)."""
    from pathlib import Path

    target, args = convert(source, name)
    timm.models.save_for_hf(target, out, model_args=args, safe_serialization=True)
    loaded = timm.create_model(f'local-dir:{Path(out)}', pretrained=True).eval()
    size = source.patch_embed.img_size[0]
    patch = source.patch_embed.patch_size[0]
    return loaded, max_difference(source, loaded, (size, (size * 3 // 2) // patch * patch))
