"""Encoder pruning from a config (`vlm.callbacks.EncoderPruning`): the reported sparsity is the fraction of zero
weights, checkpoints hold plain weights with the zeros, structured pruning removes whole MLP channels, and a
resumed run ends at the sparsity of an uninterrupted one."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict

import pytest
import timm
import torch
import torch.nn.utils.prune as prune

from vlm.callbacks import EncoderPruning
from vlm.cli.lightning import VlmCLI
from vlm.encoder.sparsity import encoder_sparsity, prunable_parameters, slim_mlp_channels, sparsity

from .in_memory import fit, write_classifier_config

TINY = dict(patch_size=8, img_size=32, depth=2, embed_dim=64, num_heads=2)  # MLP: 64 -> 256 -> 64
LINEAR_KEY = re.compile(r'^model\.blocks\.\d+\.(attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.weight$')


def test_sparsity_is_the_fraction_of_zeros_pruned_or_permanent():
    torch.manual_seed(0)
    encoder = timm.create_model('vlm_vit_tiny_patch16_rope_rms', **TINY, num_classes=0)
    pairs = prunable_parameters(encoder, 'unstructured')
    assert len(pairs) == 2 * 4  # qkv, proj, fc1, fc2 per block
    for module, name in pairs:
        prune.l1_unstructured(module, name, amount=0.3)
    with torch.no_grad():
        pairs[0][0].weight_orig[0, :5] = 0.0  # zeros the mask keeps count too
    counted = [(getattr(m, f'{n}_orig') * getattr(m, f'{n}_mask') == 0) for m, n in pairs]
    expected = sum(int(c.sum()) for c in counted) / sum(c.numel() for c in counted)
    assert sparsity(pairs) == expected == encoder_sparsity(encoder)
    assert expected > 0.3
    for module, name in pairs:
        prune.remove(module, name)
    assert sparsity(pairs) == expected  # the same zeros, now in plain weights


def _config(tmp_path: Path, name: str, pruning: Dict[str, Any], epochs: int = 2) -> Path:
    trainer = {'max_epochs': epochs, 'log_every_n_steps': 1,
               'callbacks': [{'class_path': 'vlm.callbacks.EncoderPruning', 'init_args': pruning}]}
    return write_classifier_config(tmp_path, name, TINY, trainer, {'optimization': {'warmup_epochs': 0}}, n=8)


def _pruning(cli: VlmCLI) -> EncoderPruning:
    return next(c for c in cli.trainer.callbacks if isinstance(c, EncoderPruning))


def _weights(checkpoint: Path) -> Dict[str, torch.Tensor]:
    state = torch.load(checkpoint, map_location='cpu', weights_only=True)['state_dict']
    assert not [k for k in state if k.endswith(('_orig', '_mask'))]  # plain tensors only
    return {k: v for k, v in state.items() if LINEAR_KEY.match(k)}


def _zero_fraction(weights: Dict[str, torch.Tensor]) -> float:
    return sum(int((w == 0).sum()) for w in weights.values()) / sum(w.numel() for w in weights.values())


def test_unstructured_pruning_reports_its_zeros_and_checkpoints_plain_pruned_weights(tmp_path):
    cli = fit(_config(tmp_path, 'l1', {'amount': 0.5, 'start_epoch': 0, 'end_epoch': 1}))
    callback = _pruning(cli)
    assert [round(callback.target_sparsity(e), 6) for e in (0, 1, 2)] == [0.4375, 0.5, 0.5]  # cubic schedule
    run = Path(cli.trainer.logger.log_dir)
    weights = _weights(run / 'checkpoints' / 'last.ckpt')
    assert len(weights) == 8
    # exactly round(0.5 * n) zeros in each tensor (the count pruning aimed at), nothing else
    for key, weight in weights.items():
        assert int((weight == 0).sum()) == round(0.5 * weight.numel()), key
    assert _zero_fraction(weights) == 0.5
    # the reported sparsity is the independent count; the module's pruning was made permanent at the end of fit
    assert callback.sparsity() == _zero_fraction(weights)
    assert not any(name.endswith(('_orig', '_mask')) for name in cli.model.state_dict())
    live = {k: v for k, v in cli.model.state_dict().items() if LINEAR_KEY.match(k)}
    for key, weight in weights.items():
        torch.testing.assert_close(live[key], weight)
    logged = (run / 'metrics.csv').read_text().splitlines()
    column = logged[0].split(',').index('train/sparsity')
    values = [float(line.split(',')[column]) for line in logged[1:] if line.split(',')[column]]
    assert values == [pytest.approx(0.4375, abs=1e-3), 0.5]
    # the best checkpoint (written at a validation) holds the same plain, pruned weights
    best = next(p for p in (run / 'checkpoints').iterdir() if p.name.startswith('best'))
    assert _zero_fraction(_weights(best)) >= 0.4375 - 1e-3


def test_channel_pruning_zeroes_whole_mlp_channels_and_slimming_keeps_the_outputs(tmp_path):
    cli = fit(_config(tmp_path, 'channels', {'amount': 0.5, 'mode': 'channels'}, epochs=1))
    weights = _weights(Path(cli.trainer.logger.log_dir) / 'checkpoints' / 'last.ckpt')
    state = cli.model.state_dict()
    for block in range(TINY['depth']):
        fc1 = weights[f'model.blocks.{block}.mlp.fc1.weight']  # (256, 64): rows are hidden channels
        dead_rows = (fc1 == 0).all(dim=1)
        assert int(dead_rows.sum()) == 128  # half the channels, whole rows
        assert not (fc1[~dead_rows] == 0).any()  # the kept rows are untouched
        assert (state[f'model.blocks.{block}.mlp.fc1.bias'][dead_rows] == 0).all()
        fc2 = weights[f'model.blocks.{block}.mlp.fc2.weight']  # (64, 256)
        assert torch.equal((fc2 == 0).all(dim=0), dead_rows)  # fc2 columns of the same channels
        assert not (weights[f'model.blocks.{block}.attn.qkv.weight'] == 0).any()  # attention left dense
    assert _pruning(cli).sparsity() == 0.5 == encoder_sparsity(cli.model.model, 'channels')

    model = cli.model.model.eval()
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = model(images)
        assert slim_mlp_channels(model) == 2 * 128
        assert model.blocks[0].mlp.fc1.out_features == 128 and model.blocks[0].mlp.fc2.in_features == 128
        torch.testing.assert_close(model(images), expected, atol=1e-5, rtol=1e-5)


def test_resumed_pruning_ends_where_an_uninterrupted_run_does(tmp_path):
    pruning = {'amount': 0.7, 'start_epoch': 0, 'end_epoch': 2}
    config = _config(tmp_path, 'resume', pruning, epochs=3)
    whole = fit(config)
    first = fit(config, '--trainer.max_epochs', '1')
    first_ckpt = Path(first.trainer.logger.log_dir) / 'checkpoints' / 'last.ckpt'
    resumed = VlmCLI(args=['--config', str(config)], run=False)
    resumed.trainer.fit(resumed.model, datamodule=resumed.datamodule, ckpt_path=str(first_ckpt))
    before = _weights(first_ckpt)
    after = _weights(Path(resumed.trainer.logger.log_dir) / 'checkpoints' / 'last.ckpt')
    reference = _weights(Path(whole.trainer.logger.log_dir) / 'checkpoints' / 'last.ckpt')
    for key, weight in after.items():
        assert int((weight == 0).sum()) == int((reference[key] == 0).sum()) == round(0.7 * weight.numel()), key
        assert (weight[before[key] == 0] == 0).all(), key  # what was pruned stays pruned
    assert _zero_fraction(after) == _zero_fraction(reference) == pytest.approx(0.7, abs=1e-3)


def test_global_unstructured_pruning_sets_one_threshold_for_all_layers(tmp_path):
    cli = fit(_config(tmp_path, 'global', {'amount': 0.5, 'use_global_unstructured': True}, epochs=1))
    weights = _weights(Path(cli.trainer.logger.log_dir) / 'checkpoints' / 'last.ckpt')
    total = sum(w.numel() for w in weights.values())
    assert sum(int((w == 0).sum()) for w in weights.values()) == round(0.5 * total)  # exactly, over all layers
    fractions = {round(float((w == 0).float().mean()), 3) for w in weights.values()}
    assert len(fractions) > 1  # one magnitude threshold: layers end at different sparsities
    assert _pruning(cli).sparsity() == _zero_fraction(weights)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match='final sparsity'):
        EncoderPruning(amount=1.0)
    with pytest.raises(ValueError, match='mode'):
        EncoderPruning(mode='heads')
    with pytest.raises(ValueError, match='start_epoch'):
        EncoderPruning(start_epoch=3, end_epoch=1)
