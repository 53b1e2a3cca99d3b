"""Exact conversion of pre-LN ViTs into the vlm RoPE / RMSNorm encoder: for every supported timm family, a randomly
initialised source and its conversion give the same features and intermediates, at the source's size and another;
the folder round-trips through `local-dir:`; what cannot be converted exactly is refused."""
import pytest
import timm
import torch

from vlm.cli import main as vlm_main
from vlm.encoder.conversion import convert, write_converted
from vlm.encoder.conversion_error import FAMILIES, perturbed_source
from vlm.errors import InputError


@pytest.mark.parametrize('name, size', FAMILIES)
def test_the_conversion_is_exact_at_the_training_size_and_another(name, size):
    source = perturbed_source(name, size)
    target, args = convert(source, name)
    assert type(target).__name__ == 'VisionTransformerRopeRms' and args['final_norm_bias']
    assert all(type(block.norm1).__name__ == 'FastRmsNorm' for block in target.blocks)
    patch = source.patch_embed.patch_size[0]
    depth = len(source.blocks)
    for height, width in ((size, size), (size + 2 * patch, size - patch)):
        images = torch.randn(2, 3, height, width)
        with torch.no_grad():
            torch.testing.assert_close(target.forward_features(images), source.forward_features(images),
                                       rtol=1e-5, atol=2e-5)
            for normed in (True, False):
                ours = target.forward_intermediates(images, indices=[0, depth // 2], norm=normed,
                                                    intermediates_only=True)
                theirs = source.forward_intermediates(images, indices=[0, depth // 2], norm=normed,
                                                      intermediates_only=True)
                for got, expected in zip(ours, theirs):  # (B, C, h, w); the raw stream is the source's, centred
                    expected = expected if normed else expected - expected.mean(1, keepdim=True)
                    torch.testing.assert_close(got, expected, rtol=1e-5, atol=2e-5)
    if getattr(source, 'rope', None) is None:
        assert target.rope.freqs.abs().max() == 0  # the identity rotation until fine-tuning learns it


def test_a_head_is_carried_over_and_the_folder_round_trips(tmp_path):
    source = perturbed_source('deit_tiny_patch16_224', 64)
    source.reset_classifier(5)
    torch.nn.init.normal_(source.head.weight)
    loaded, difference = write_converted(source, str(tmp_path / 'deit'), 'deit')
    assert difference < 2e-5 and loaded.num_classes == 5
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), source(images), rtol=1e-5, atol=2e-5)
    assert (tmp_path / 'deit' / 'config.json').is_file() and (tmp_path / 'deit' / 'model.safetensors').is_file()


def test_what_cannot_be_converted_exactly_is_refused(tmp_path, capsys):
    with pytest.raises(InputError, match='post-norm'):
        convert(timm.create_model('vit_small_patch16_rope_mixed_224', use_post_norm=True, num_classes=0))
    with pytest.raises(InputError, match='q/k norms'):
        convert(timm.create_model('vit_tiny_patch16_224', qk_norm=True, num_classes=0))
    with pytest.raises(InputError, match='axial'):
        convert(timm.create_model('vit_small_patch16_rope_224', num_classes=0))
    with pytest.raises(InputError, match='distillation'):
        convert(timm.create_model('deit_tiny_distilled_patch16_224', num_classes=0))
    with pytest.raises(InputError, match='fc_norm'):
        convert(timm.create_model('vit_tiny_patch16_224', global_pool='avg', num_classes=0))
    assert vlm_main(['convert', 'vit_small_patch14_dinov2', '--out', str(tmp_path / 'x')]) == 1
    assert 'give the weights file' in capsys.readouterr().err
