"""The encoder as a timm model: registry, any image size, dense features, JSON-serialisable kwargs."""
import json

import pytest
import timm
import timm.optim
import torch

from vlm.encoder import ENCODER_NAMES, VisionTransformerRopeRms, dense_features

TINY = dict(depth=2, num_classes=0)


def test_registered_variants_have_the_documented_sizes():
    assert set(ENCODER_NAMES) <= set(timm.list_models('vlm_*'))
    expected = {
        'vlm_vit_tiny_patch16_rope_rms': (192, 12, 3),
        'vlm_vit_small_patch16_rope_rms': (384, 12, 6),
        'vlm_vit_base_patch16_rope_rms': (768, 12, 12),
        'vlm_vit_large_patch16_rope_rms': (1024, 24, 16),
    }
    for name, (width, depth, heads) in expected.items():
        model = timm.create_model(name, num_classes=0)
        assert isinstance(model, VisionTransformerRopeRms)
        assert (model.embed_dim, len(model.blocks), model.blocks[0].attn.num_heads) == (width, depth, heads)
        assert model.patch_embed.patch_size == (16, 16)
        assert model.dynamic_img_size and model.pos_embed is None
        del model


@pytest.mark.parametrize('rope_type', ['mixed', 'axial'])
def test_same_weights_run_at_any_size(rope_type):
    model = timm.create_model('vlm_vit_tiny_patch16_rope_rms', rope_type=rope_type, **TINY).eval()
    for height, width in [(128, 128), (224, 224), (320, 192)]:
        features = dense_features(model, torch.randn(2, 3, height, width), indices=(0,))
        assert features.last.shape == (2, 192, height // 16, width // 16)
        assert features.intermediates[0].shape == (2, 192, height // 16, width // 16)
        assert features.prefix_tokens.shape == (2, 1, 192)
        assert model(torch.randn(1, 3, height, width)).shape == (1, 192)


def test_dense_features_match_forward_features():
    model = timm.create_model('vlm_vit_tiny_patch16_rope_rms', num_reg_tokens=2, **TINY).eval()
    images = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        tokens = model.forward_features(images)  # (B, 3 + 6*4, C), final norm applied
        features = dense_features(model, images, indices=(0, -1), norm=True)
    grid = tokens[:, 3:].reshape(2, 6, 4, 192).permute(0, 3, 1, 2)
    torch.testing.assert_close(features.last, grid, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(features.prefix_tokens, tokens[:, :3], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(features.intermediates[1], grid, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(features.intermediates[0], grid, atol=1e-3)


def test_small_images_with_patch_8():
    model = timm.create_model('vlm_vit_tiny_patch16_rope_rms', patch_size=8, img_size=128, **TINY)
    assert dense_features(model, torch.randn(1, 3, 128, 128)).last.shape == (1, 192, 16, 16)


def test_kwargs_from_json_describe_the_encoder_completely():
    kwargs = json.loads(json.dumps(dict(
        patch_size=8, img_size=64, embed_dim=64, depth=3, num_heads=2, norm_layer='rmsnorm', rope_type='axial',
        rope_temperature=50.0, drop_path_rate=0.1, num_reg_tokens=1, qk_norm=True, num_classes=7)))
    model = timm.create_model('vlm_vit_tiny_patch16_rope_rms', **kwargs)
    assert model.rope.rope_type == 'axial' and model.rope.temperature == 50.0
    assert model.embed_dim == 64 and len(model.blocks) == 3 and model.num_prefix_tokens == 2
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 7)
    layer_norm_model = timm.create_model('vlm_vit_tiny_patch16_rope_rms', norm_layer='layernorm', **TINY)
    assert isinstance(layer_norm_model.norm, torch.nn.LayerNorm)


def test_unknown_choices_are_refused():
    with pytest.raises(ValueError, match='rope_type'):
        timm.create_model('vlm_vit_tiny_patch16_rope_rms', rope_type='spiral', **TINY)
    with pytest.raises(ValueError, match='norm_layer'):
        timm.create_model('vlm_vit_tiny_patch16_rope_rms', norm_layer='nonorm', **TINY)


@pytest.mark.parametrize('rope_type', ['mixed', 'axial'])
def test_patch_dropout_keeps_the_right_rope_rows(rope_type):
    model = timm.create_model(
        'vlm_vit_tiny_patch16_rope_rms', rope_type=rope_type, patch_drop_rate=0.5, **TINY).train()
    table = model.rope.get_embed((4, 4))  # one row per patch
    keep = torch.tensor([[0, 5, 9], [15, 2, 3]])

    def drop(x):  # timm's PatchDropoutWithIndices with these patches kept: (prefix + kept tokens, indices)
        rows = torch.cat([torch.zeros(2, 1, dtype=torch.long), keep + 1], 1)
        return x.gather(1, rows[..., None].expand(-1, -1, x.shape[-1])), keep

    model.patch_drop.forward = drop
    _, gathered = model._pos_embed(model.patch_embed(torch.randn(2, 3, 64, 64)))  # Eva's own _pos_embed
    for b in range(2):
        expected = table[..., keep[b], :]
        got = gathered[:, b] if rope_type == 'mixed' else gathered[b, 0]
        torch.testing.assert_close(got, expected)
    del model.patch_drop.forward
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 192)


def test_timm_pieces_work_on_the_encoder():
    model = timm.create_model('vlm_vit_tiny_patch16_rope_rms', **TINY)
    model.set_grad_checkpointing(True)
    images = torch.randn(1, 3, 64, 64, requires_grad=True)
    model(images).sum().backward()
    assert images.grad is not None
    optimizer = timm.optim.create_optimizer_v2(model, 'adamw', lr=1e-3, layer_decay=0.75)
    scales = sorted({group.get('lr_scale', 1.0) for group in optimizer.param_groups})
    assert len(scales) == len(model.blocks) + 2  # stem, each block, final norm/head


def test_conv_stem_keeps_the_grid_and_the_rest_of_the_encoder():
    torch.manual_seed(0)
    conv = timm.create_model('vlm_vit_tiny_patch16_rope_rms', stem='conv', depth=2, num_classes=0)
    patch = timm.create_model('vlm_vit_tiny_patch16_rope_rms', depth=2, num_classes=0)
    for size in ((224, 224), (96, 160)):
        images = torch.randn(2, 3, *size)
        assert dense_features(conv, images).last.shape == dense_features(patch, images).last.shape
    # the stem: 4 stride-2 3x3 convs (patch 16 = 2^4) + a 1x1 projection, everything else identical
    stem_convs = [m for m in conv.patch_embed.proj.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride for c in stem_convs] == [(2, 2)] * 4 + [(1, 1)]
    conv_keys = {k for k in conv.state_dict() if not k.startswith('patch_embed.')}
    assert conv_keys == {k for k in patch.state_dict() if not k.startswith('patch_embed.')}
    conv(torch.randn(2, 3, 64, 64)).sum().backward()
    assert all(p.grad is not None for p in conv.patch_embed.parameters())
    # layer decay puts the stem in the first group, with the embedding
    groups = timm.optim.create_optimizer_v2(conv, 'adamw', lr=1e-3, layer_decay=0.5).param_groups
    stem_ids = {id(p) for p in conv.patch_embed.parameters()}
    stem_scales = {g['lr_scale'] for g in groups if any(id(p) in stem_ids for p in g['params'])}
    assert stem_scales == {0.5 ** 3}  # depth 2: stem at layer 0 of 3
    with pytest.raises(ValueError, match='power-of-2'):
        timm.create_model('vlm_vit_tiny_patch16_rope_rms', stem='conv', patch_size=12)
    with pytest.raises(ValueError, match="set stem='conv'"):
        timm.create_model('vlm_vit_tiny_patch16_rope_rms', stem_depth=2)


def test_conv_stem_width_and_depth_shape_every_stage():
    model = timm.create_model('vlm_vit_tiny_patch16_rope_rms', stem='conv', stem_width=32, stem_depth=2,
                              patch_size=8, embed_dim=128, num_heads=2, depth=1, num_classes=0)
    convs = [m for m in model.patch_embed.proj.modules() if isinstance(m, torch.nn.Conv2d)]
    # 3 stages (patch 8) of one stride-2 and one stride-1 3x3 conv, widths 32 -> 64 -> 128, then the 1x1
    assert [(c.out_channels, c.stride, c.kernel_size) for c in convs] == [
        (32, (2, 2), (3, 3)), (32, (1, 1), (3, 3)), (64, (2, 2), (3, 3)), (64, (1, 1), (3, 3)),
        (128, (2, 2), (3, 3)), (128, (1, 1), (3, 3)), (128, (1, 1), (1, 1))]
    assert model.forward_features(torch.randn(2, 3, 40, 56)).shape == (2, 1 + 5 * 7, 128)  # class token + grid
    with pytest.raises(ValueError, match="stem must be"):
        timm.create_model('vlm_vit_tiny_patch16_rope_rms', stem='hybrid')
