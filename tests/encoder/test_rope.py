"""2D RoPE inside the encoder's own attention: relative positions, norm preservation, prefix untouched."""
import itertools

import pytest
import timm
import torch
import torch.nn.functional as F

from vlm.layers.rope_2d import RotaryEmbedding2d, apply_rotary

GRID = (5, 6)


def _capture_first_block_qk(model, images):
    """Run `model` and return (attention input x, rotated q, rotated k) seen by block 0's attention."""
    captured = {}
    sdpa = F.scaled_dot_product_attention

    def spy(q, k, v, **kwargs):
        captured.setdefault('q', q.detach().clone())
        captured.setdefault('k', k.detach().clone())
        return sdpa(q, k, v, **kwargs)

    hook = model.blocks[0].attn.register_forward_pre_hook(
        lambda module, args: captured.setdefault('x', args[0].detach().clone()))
    try:
        torch.nn.functional.scaled_dot_product_attention = spy
        with torch.no_grad():
            model(images)
    finally:
        torch.nn.functional.scaled_dot_product_attention = sdpa
        hook.remove()
    return captured['x'], captured['q'], captured['k']


@pytest.fixture(params=['mixed', 'axial'])
def model(request):
    return timm.create_model(
        'vlm_vit_tiny_patch16_rope_rms', patch_size=8, img_size=64, depth=2, rope_type=request.param).eval()


def test_attention_logits_depend_only_on_offset(model):
    # A constant image gives every patch the same token, so before rotation q and k are equal at every
    # position; after rotation the logit q(p1) . k(p2) must depend on p1 - p2 only.
    images = torch.full((1, 3, GRID[0] * 8, GRID[1] * 8), 0.3)
    _, q, k = _capture_first_block_qk(model, images)
    npt = model.num_prefix_tokens
    logits = torch.einsum('bhnd,bhmd->bhnm', q[:, :, npt:], k[:, :, npt:])[0].double()  # (heads, N, N)
    positions = list(itertools.product(range(GRID[0]), range(GRID[1])))
    by_offset = {}
    for (i, p1), (j, p2) in itertools.product(enumerate(positions), repeat=2):
        by_offset.setdefault((p1[0] - p2[0], p1[1] - p2[1]), []).append(logits[:, i, j])
    pairs_checked = 0
    for offset, values in by_offset.items():
        values = torch.stack(values)  # (pairs, heads)
        if len(values) > 1:
            torch.testing.assert_close(values, values[:1].expand_as(values), rtol=1e-4, atol=1e-4)
            pairs_checked += len(values)
    assert pairs_checked > 500
    # ...and it does depend on the offset: the rotation is not the identity.
    per_offset = torch.stack([torch.stack(v)[0] for v in by_offset.values()])  # (offsets, heads)
    assert (per_offset.max(0).values - per_offset.min(0).values).min() > 1e-3


def test_rotation_preserves_norms_and_leaves_prefix_tokens(model):
    images = torch.randn(2, 3, GRID[0] * 8, GRID[1] * 8)
    x, q, k = _capture_first_block_qk(model, images)
    attn = model.blocks[0].attn
    B, N, C = x.shape
    qkv = attn.qkv(x).view(B, N, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)  # unrotated
    torch.testing.assert_close(q.norm(dim=-1), qkv[0].norm(dim=-1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(k.norm(dim=-1), qkv[1].norm(dim=-1), rtol=1e-5, atol=1e-5)
    npt = model.num_prefix_tokens
    assert npt == 1
    torch.testing.assert_close(q[:, :, :npt], qkv[0][:, :, :npt], rtol=0, atol=0)
    torch.testing.assert_close(k[:, :, :npt], qkv[1][:, :, :npt], rtol=0, atol=0)
    assert not torch.allclose(q[:, :, npt:], qkv[0][:, :, npt:], atol=1e-3)  # patches are rotated


def test_apply_rotary_matches_real_rotation():
    # Hand-written rotation of each channel pair (x0, x1) -> (x0 cos t - x1 sin t, x0 sin t + x1 cos t).
    x = torch.randn(2, 3, 7, 8)
    angles = torch.randn(3, 7, 4)
    out = apply_rotary(x, torch.polar(torch.ones_like(angles), angles))
    x0, x1 = x[..., 0::2], x[..., 1::2]
    expected = torch.stack([x0 * angles.cos() - x1 * angles.sin(), x0 * angles.sin() + x1 * angles.cos()], -1)
    torch.testing.assert_close(out, expected.flatten(-2), rtol=1e-5, atol=1e-5)


def test_axial_rows_turn_with_rows_and_columns_with_columns():
    rope = RotaryEmbedding2d(head_dim=16, num_heads=2, depth=1, rope_type='axial')
    angles = rope.angles((3, 4))[0, 0].view(3, 4, 8)  # (H, W, pairs)
    half = 4
    torch.testing.assert_close(angles[:, 0, :half], angles[:, 3, :half])  # first half: rows only
    torch.testing.assert_close(angles[0, :, half:], angles[2, :, half:])  # second half: columns only


def test_mixed_frequencies_are_learned_per_block_and_head():
    model = timm.create_model('vlm_vit_tiny_patch16_rope_rms', patch_size=8, img_size=64, depth=3)
    assert model.rope.freqs.shape == (2, 3, 3, 32)
    model(torch.randn(2, 3, 64, 48)).sum().backward()
    grad = model.rope.freqs.grad
    assert grad is not None and torch.all(grad.abs().flatten(1).sum(1) > 0)
    assert 'rope.freqs' in model.no_weight_decay()


def test_axial_has_no_trainable_frequencies():
    model = timm.create_model('vlm_vit_tiny_patch16_rope_rms', patch_size=8, depth=2, rope_type='axial')
    assert not any('rope' in name for name, _ in model.named_parameters())
