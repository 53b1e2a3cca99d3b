"""The vlm image encoder: a timm `Eva` Vision Transformer with 2D RoPE and RMSNorm, registered in timm.

After `import vlm`, `timm.create_model('vlm_vit_small_patch16_rope_rms', **kwargs)` builds one. Every
constructor argument is JSON-serialisable (norm layer and RoPE type are chosen by name), so a YAML config
describes an encoder completely.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple, Union

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import get_act_layer, get_norm_layer
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.eva import Eva
from torch import nn

from vlm.layers.conv_stem import ConvStem
from vlm.layers.rms_norm import FastRmsNorm, RmsNormProjection, RmsNormWithBias
from vlm.layers.rope_2d import RotaryEmbedding2d
from vlm.layers.rope_attention import RopeAttention

from .checkpoint_filter import checkpoint_filter_fn

__all__ = ['VisionTransformerRopeRms', 'ENCODER_NAMES']

NORM_LAYERS: Dict[str, Callable[..., nn.Module]] = {'rmsnorm': FastRmsNorm}
PRE_NORMS = ('none', 'rmsnorm_linear')  # a norm before the blocks: none, or RMSNorm + Linear (converted CLIP)


def resolve_norm_layer(name: str, eps: float) -> Callable[[int], nn.Module]:
    """A norm layer by name: 'rmsnorm' (the fused RMSNorm) or any name timm's `get_norm_layer` knows."""
    try:
        layer = NORM_LAYERS.get(name) or get_norm_layer(name)
    except KeyError:
        layer = None
    if layer is None:
        raise ValueError(f"unknown norm_layer {name!r}: use 'rmsnorm' or a timm norm layer name ('layernorm', ...)")

    def make(channels: int, **kwargs: Any) -> nn.Module:  # kwargs: device / dtype from timm
        return layer(channels, eps=eps, **kwargs)

    return make


class VisionTransformerRopeRms(Eva):
    """ViT with 2D rotary position embedding and RMSNorm on timm's `Eva` (blocks, patch embed, pooling,
    `forward_intermediates`, `group_matcher` for layer-wise lr decay, gradient checkpointing).

    What differs from a plain `Eva`: the norm layer is given by name (default 'rmsnorm'); there is no
    absolute position embedding unless asked for (`use_abs_pos_emb`, resampled to other grids by Eva's own
    `_pos_embed`, as timm does); the RoPE tables come from `RotaryEmbedding2d` (``rope_type`` 'mixed' or
    'axial', ``rope_init`` 'zero' for identity rotations) through timm's `get_embed` interface, and are applied by
    `RopeAttention` (Eva has no argument for its attention class, so its blocks' attention is replaced after
    Eva builds them; `RopeAttention`'s docstring says why it is kept); `dynamic_img_size` is on, so any image size
    runs (the grid is H // patch by W // patch); ``stem='conv'`` replaces the patchify convolution with a
    convolutional stem of the same stride (`ConvStem`, Xiao et al. 2021) whose first stage is ``stem_width`` wide
    with ``stem_depth`` 3x3 convs per stage. For a pre-LN ViT converted exactly (`vlm.encoder.conversion`):
    ``act_layer`` (any timm activation name: 'quick_gelu' for OpenAI CLIP), ``final_norm_bias`` (the final
    norm keeps LayerNorm's bias, `RmsNormWithBias`), ``pre_norm='rmsnorm_linear'`` (CLIP's norm before the blocks,
    `RmsNormProjection`).
    """

    def __init__(
            self,
            img_size: Union[int, Tuple[int, int]] = 224,
            patch_size: Union[int, Tuple[int, int]] = 16,
            embed_dim: int = 768,
            depth: int = 12,
            num_heads: int = 12,
            qkv_bias: bool = True,
            qk_norm: bool = False,
            norm_layer: str = 'rmsnorm',
            norm_eps: float = 1e-6,
            rope_type: str = 'mixed',
            rope_temperature: Optional[float] = None,
            rope_init: str = 'random',
            stem: str = 'patch',
            stem_width: Optional[int] = None,
            stem_depth: int = 1,
            use_abs_pos_emb: bool = False,
            act_layer: str = 'gelu',
            final_norm_bias: bool = False,
            pre_norm: str = 'none',
            dynamic_img_size: bool = True,
            global_pool: str = 'avg',
            use_fc_norm: bool = False,
            attn_drop_rate: float = 0.0,
            **kwargs: Any,
    ) -> None:
        for unsupported in ('use_rot_pos_emb', 'attn_type', 'qkv_fused', 'rope_rotate_half', 'use_post_norm',
                            'use_pre_transformer_norm'):
            if unsupported in kwargs:
                raise TypeError(f"{unsupported!r} is fixed by {type(self).__name__} (RoPE attention is built in)")
        if pre_norm not in PRE_NORMS:
            raise ValueError(f"pre_norm must be one of {PRE_NORMS}, got {pre_norm!r}")
        super().__init__(
            img_size=img_size,
            patch_size=patch_size,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            qkv_bias=qkv_bias,
            qk_norm=qk_norm,
            norm_layer=resolve_norm_layer(norm_layer, norm_eps),
            use_abs_pos_emb=use_abs_pos_emb,
            use_rot_pos_emb=False,
            use_pre_transformer_norm=pre_norm != 'none',  # (and a patch embedding without bias, as CLIP's)
            dynamic_img_size=dynamic_img_size,
            global_pool=global_pool,
            use_fc_norm=use_fc_norm,
            **kwargs,
        )
        if stem not in ('patch', 'conv'):
            raise ValueError(f"stem must be 'patch' or 'conv', got {stem!r}")
        if stem == 'patch' and (stem_width is not None or stem_depth != 1):
            raise ValueError("stem_width / stem_depth shape the conv stem: set stem='conv' to use them")
        if stem == 'conv':
            patch = self.patch_embed.patch_size
            if patch[0] != patch[1]:
                raise ValueError(f'a conv stem needs a square patch, got {patch}')
            self.patch_embed.proj = ConvStem(
                kwargs.get('in_chans', 3), embed_dim, patch[0], width=stem_width, depth=stem_depth)
        head_dim = embed_dim // num_heads
        self.rope = RotaryEmbedding2d(
            head_dim=head_dim,
            num_heads=num_heads,
            depth=depth,
            rope_type=rope_type,
            temperature=rope_temperature,
            init=rope_init,
        )
        self.rope_mixed = rope_type == 'mixed'  # Eva then hands block i the table rope[i]
        qk_norm_layer = resolve_norm_layer(norm_layer, norm_eps) if qk_norm else None
        for block in self.blocks:
            block.attn = RopeAttention(
                embed_dim,
                num_heads=num_heads,
                qkv_bias=qkv_bias,
                qk_norm=qk_norm,
                norm_layer=qk_norm_layer,
                attn_drop=attn_drop_rate,
                proj_drop=kwargs.get('proj_drop_rate', 0.0),
                num_prefix_tokens=self.num_prefix_tokens,
            )
        if act_layer != 'gelu':
            for block in self.blocks:
                block.mlp.act = get_act_layer(act_layer)()
        if final_norm_bias and not isinstance(self.norm, nn.Identity):
            self.norm = RmsNormWithBias(embed_dim, eps=norm_eps)
        if pre_norm == 'rmsnorm_linear':
            self.norm_pre = RmsNormProjection(embed_dim, eps=norm_eps)
        self.init_weights(needs_reset=False)  # the new attention layers get Eva's init (incl. depth scaling)


def _cfg(**kwargs: Any) -> Dict[str, Any]:
    return {
        'url': '',
        'num_classes': 1000,
        'input_size': (3, 224, 224),
        'pool_size': None,
        'crop_pct': 0.9,
        'interpolation': 'bicubic',
        'fixed_input_size': False,
        'mean': IMAGENET_DEFAULT_MEAN,
        'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'patch_embed.proj',
        'classifier': 'head',
        'license': 'apache-2.0',
        **kwargs,
    }


default_cfgs = generate_default_cfgs({
    'vlm_vit_tiny_patch16_rope_rms': _cfg(),
    'vlm_vit_small_patch16_rope_rms': _cfg(),
    'vlm_vit_base_patch16_rope_rms': _cfg(),
    'vlm_vit_large_patch16_rope_rms': _cfg(),
})

_VARIANTS: Dict[str, Dict[str, Any]] = {
    'vlm_vit_tiny_patch16_rope_rms': dict(patch_size=16, embed_dim=192, depth=12, num_heads=3),
    'vlm_vit_small_patch16_rope_rms': dict(patch_size=16, embed_dim=384, depth=12, num_heads=6),
    'vlm_vit_base_patch16_rope_rms': dict(patch_size=16, embed_dim=768, depth=12, num_heads=12),
    'vlm_vit_large_patch16_rope_rms': dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16),
}
ENCODER_NAMES = tuple(_VARIANTS)


def _create(variant: str, pretrained: bool = False, **kwargs: Any) -> VisionTransformerRopeRms:
    out_indices = kwargs.pop('out_indices', 3)
    return build_model_with_cfg(
        VisionTransformerRopeRms,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=out_indices, feature_cls='getter'),
        **{**_VARIANTS[variant], **kwargs},
    )


@register_model
def vlm_vit_tiny_patch16_rope_rms(pretrained: bool = False, **kwargs: Any) -> VisionTransformerRopeRms:
    """ViT-Ti/16 (192 wide, 12 deep, 3 heads), 2D RoPE (mixed by default), RMSNorm."""
    return _create('vlm_vit_tiny_patch16_rope_rms', pretrained, **kwargs)


@register_model
def vlm_vit_small_patch16_rope_rms(pretrained: bool = False, **kwargs: Any) -> VisionTransformerRopeRms:
    """ViT-S/16 (384 wide, 12 deep, 6 heads), 2D RoPE (mixed by default), RMSNorm."""
    return _create('vlm_vit_small_patch16_rope_rms', pretrained, **kwargs)


@register_model
def vlm_vit_base_patch16_rope_rms(pretrained: bool = False, **kwargs: Any) -> VisionTransformerRopeRms:
    """ViT-B/16 (768 wide, 12 deep, 12 heads), 2D RoPE (mixed by default), RMSNorm."""
    return _create('vlm_vit_base_patch16_rope_rms', pretrained, **kwargs)


@register_model
def vlm_vit_large_patch16_rope_rms(pretrained: bool = False, **kwargs: Any) -> VisionTransformerRopeRms:
    """ViT-L/16 (1024 wide, 24 deep, 16 heads), 2D RoPE (mixed by default), RMSNorm."""
    return _create('vlm_vit_large_patch16_rope_rms', pretrained, **kwargs)
