"""The simple feature pyramid: strides, shapes and channels for patch sizes 8 and 16; gradients reach the encoder."""
import pytest
import torch

from vlm.models import SimpleFeaturePyramid, ViTDetBackbone

TINY = dict(depth=2, embed_dim=32, num_heads=2)


@pytest.mark.parametrize('patch, strides, extra', [
    (16, (4, 8, 16, 32), 1),    # ViTDet Mask R-CNN: 4x and 2x up, identity, 2x down, + pool
    (16, (8, 16, 32), 2),       # ViTDet RetinaNet: P3-P5 + P6, P7
    (8, (4, 8, 16, 32), 1),     # a stride-8 encoder: 2x up, identity, 2x and 4x down
    (8, (2, 8, 64), 0),         # 4x up, 8x down
])
@pytest.mark.parametrize('height, width', [(128, 128), (256, 128), (64, 192)])
def test_output_strides_shapes_and_channels(patch, strides, extra, height, width):
    pyramid = SimpleFeaturePyramid(in_channels=48, out_channels=24, input_stride=patch, strides=strides,
                                   extra_levels=extra)
    grid = torch.randn(2, 48, height // patch, width // patch)  # (B, C, H/p, W/p)
    outputs = pyramid(grid)
    assert pyramid.out_strides == [*strides, *(strides[-1] * 2 ** (i + 1) for i in range(extra))]
    # a level past the input size rounds up (max-pool with ceil), as the extra levels of torchvision's FPN
    assert [tuple(out.shape) for out in outputs] == [(2, 24, -(-height // s), -(-width // s))
                                                     for s in pyramid.out_strides]


def test_upsampling_halves_channels_per_deconv_with_norm_and_gelu_between():
    pyramid = SimpleFeaturePyramid(in_channels=64, out_channels=16, input_stride=16, strides=(4,))
    rescale = pyramid.levels[0][0]
    kinds = [type(layer).__name__ for layer in rescale]
    assert kinds == ['ConvTranspose2d', 'LayerNorm2d', 'GELU', 'ConvTranspose2d']
    assert (rescale[0].out_channels, rescale[3].out_channels) == (32, 16)


def test_strides_must_be_the_patch_size_times_a_power_of_two():
    with pytest.raises(ValueError, match='power of 2'):
        SimpleFeaturePyramid(in_channels=32, input_stride=16, strides=(12, 24))


@pytest.mark.parametrize('patch', [8, 16])
def test_backbone_levels_and_gradients_reach_the_encoder(patch):
    backbone = ViTDetBackbone('vlm_vit_tiny_patch16_rope_rms', dict(patch_size=patch, img_size=64, **TINY),
                              pyramid_channels=16, strides=(4, 8, 16, 32), extra_levels=1)
    images = torch.randn(2, 3, 64, 128)
    features = backbone(images)
    assert list(features) == ['0', '1', '2', '3', '4'] and backbone.out_channels == 16
    assert backbone.featmap_names == ['0', '1', '2', '3']
    assert [tuple(f.shape) for f in features.values()] == [(2, 16, 64 // s, 128 // s) for s in (4, 8, 16, 32, 64)]
    sum(f.square().mean() for f in features.values()).backward()
    for name in ('patch_embed.proj.weight', 'blocks.0.attn.qkv.weight', 'blocks.1.mlp.fc2.weight'):
        grad = backbone.encoder.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
