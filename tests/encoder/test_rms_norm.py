"""RMSNorm: the hand formula, torch's rms_norm, no mean subtraction, and a correct hand-written backward."""
import pytest
import torch
import torch.nn.functional as F
from timm.layers import RmsNorm

from vlm.layers.rms_norm import FastRmsNorm, _RmsNormFunction


def test_matches_hand_formula_and_torch():
    norm = FastRmsNorm(32, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(32))
    x = torch.randn(4, 10, 32) * 3 + 1
    by_hand = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * norm.weight
    torch.testing.assert_close(norm(x), by_hand, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(norm(x), F.rms_norm(x, (32,), norm.weight, 1e-6), rtol=1e-5, atol=1e-5)
    assert isinstance(norm, RmsNorm)  # timm's RmsNorm: same parameters, same state dict


def test_no_mean_subtraction():
    norm = FastRmsNorm(16)
    x = torch.randn(3, 16)
    assert not torch.allclose(norm(x), norm(x + 5.0), atol=1e-3)
    layer_norm = torch.nn.LayerNorm(16, elementwise_affine=False)
    torch.testing.assert_close(layer_norm(x), layer_norm(x + 5.0), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('with_weight', [True, False])
def test_backward_matches_finite_differences(with_weight):
    x = torch.randn(3, 5, 8, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(8, dtype=torch.float64, requires_grad=True) if with_weight else None
    assert torch.autograd.gradcheck(lambda a, w: _RmsNormFunction.apply(a, w, 1e-6), (x, weight))


def test_encoder_uses_rms_norm_everywhere():
    import timm
    model = timm.create_model('vlm_vit_tiny_patch16_rope_rms', depth=2)
    norms = [m for m in model.modules() if isinstance(m, (torch.nn.LayerNorm, RmsNorm))]
    assert norms and all(isinstance(m, FastRmsNorm) for m in norms)
    assert isinstance(model.norm, FastRmsNorm)
    assert all(not hasattr(m, 'bias') or m.bias is None for m in norms)


def test_bf16_autocast_runs_in_float32():
    norm = FastRmsNorm(8)
    x = torch.randn(2, 8, dtype=torch.bfloat16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        y = norm(x)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, F.rms_norm(x.float(), (8,), norm.weight, norm.eps), rtol=1e-5, atol=1e-5)
