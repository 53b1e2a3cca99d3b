"""Local pretrained weights: safetensors / torch files, timm's pretrained_cfg_overlay, Lightning checkpoints."""
import pytest
import timm
import torch
from safetensors.torch import save_file

from vlm.encoder import CheckpointShapeError, load_encoder_weights

NAME = 'vlm_vit_tiny_patch16_rope_rms'
KWARGS = dict(depth=2, num_classes=4)


@pytest.fixture
def trained(tmp_path):
    model = timm.create_model(NAME, **KWARGS).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)  # weights no fresh init could reproduce
    path = tmp_path / 'encoder.safetensors'
    save_file(model.state_dict(), str(path))
    return model, path


def _outputs(model):
    return model.eval()(torch.linspace(-1, 1, 2 * 3 * 64 * 48).view(2, 3, 64, 48))


def test_safetensors_round_trip(trained):
    model, path = trained
    fresh = timm.create_model(NAME, **KWARGS)
    report = load_encoder_weights(fresh, path)
    assert not report.missing and not report.unexpected
    torch.testing.assert_close(_outputs(fresh), _outputs(model), rtol=0, atol=0)


def _timm_pretrained(path, **kwargs):
    # num_classes in the overlay says the file's head has 4 classes (timm drops a head of another size)
    overlay = dict(file=str(path), num_classes=4)
    return timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)


def test_timm_pretrained_from_local_file(trained):
    model, path = trained
    torch.testing.assert_close(_outputs(_timm_pretrained(path, **KWARGS)), _outputs(model), rtol=0, atol=0)
    headless = _timm_pretrained(path, depth=2, num_classes=0)  # timm drops the head, keeps the encoder
    model.reset_classifier(0)
    torch.testing.assert_close(_outputs(headless), _outputs(model), rtol=0, atol=0)


def test_encoder_inside_a_lightning_checkpoint(trained, tmp_path):
    model, _ = trained
    checkpoint = {
        'epoch': 3,
        'global_step': 120,
        'state_dict': {
            **{f'encoder.{k}': v for k, v in model.state_dict().items()},
            'head.weight': torch.randn(10, 192),  # a task head that is not the encoder's
        },
    }
    path = tmp_path / 'last.ckpt'
    torch.save(checkpoint, path)
    fresh = timm.create_model(NAME, **KWARGS)
    load_encoder_weights(fresh, path)
    torch.testing.assert_close(_outputs(fresh), _outputs(model), rtol=0, atol=0)
    via_timm = _timm_pretrained(path, **KWARGS)
    torch.testing.assert_close(_outputs(via_timm), _outputs(model), rtol=0, atol=0)


def test_wrong_shape_is_refused_naming_tensor_and_shapes(trained):
    _, path = trained
    other = timm.create_model(NAME, depth=2, num_classes=7)
    with pytest.raises(CheckpointShapeError) as error:
        load_encoder_weights(other, path)
    message = str(error.value)
    assert 'head.weight' in message and '(4, 192)' in message and '(7, 192)' in message
    assert str(path) in message
    with pytest.raises(RuntimeError, match=r'blocks\.0\.mlp\.fc1\.weight.*\[768, 192\].*\[384, 192\]'):
        _timm_pretrained(path, mlp_ratio=2, **KWARGS)


def test_missing_and_unexpected_keys_are_reported(trained):
    _, path = trained
    headless = timm.create_model(NAME, depth=2, num_classes=0)
    with pytest.raises(KeyError, match='not used by the model.*head.weight'):
        load_encoder_weights(headless, path)
    report = load_encoder_weights(headless, path, strict=False)
    assert set(report.unexpected) == {'head.weight', 'head.bias'} and not report.missing
    with_registers = timm.create_model(NAME, num_reg_tokens=2, **KWARGS)
    report = load_encoder_weights(with_registers, path, strict=False)
    assert report.missing == ['reg_token'] and not report.unexpected


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'x': torch.zeros(1)}, 'obj': object()}, path)
    with pytest.raises(ValueError, match='weights_only=True'):
        load_encoder_weights(timm.create_model(NAME, **KWARGS), path)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.safetensors'):
        load_encoder_weights(timm.create_model(NAME, **KWARGS), tmp_path / 'nope.safetensors')
