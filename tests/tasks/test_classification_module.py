"""ImageClassifier internals: layer-decay groups really scale the lr, EMA weights are real and evaluated."""
import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from vlm.tasks import ImageClassifier

ENCODER = dict(encoder='vlm_vit_tiny_patch16_rope_rms',
               encoder_kwargs=dict(patch_size=8, img_size=32, depth=3, embed_dim=64, num_heads=2))


class Batches(torch.utils.data.Dataset):
    def __init__(self, n=16):
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, 3, 32, 32, generator=generator)
        self.labels = torch.randint(0, 3, (n,), generator=generator)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], self.labels[i], f'img{i}'


def _loader():
    from vlm.data.collate import collate_classification
    return DataLoader(Batches(), batch_size=4, collate_fn=collate_classification)


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the task's ModelCheckpoint writes under the working directory


def _trainer(**kwargs):
    options = dict(accelerator='cpu', max_epochs=1, logger=False, enable_progress_bar=False,
                   enable_model_summary=False)
    return L.Trainer(**{**options, **kwargs})


def test_layer_decay_groups_have_the_expected_lr_scales():
    model = ImageClassifier(num_classes=3, **ENCODER,
                            optimization=dict(layer_decay=0.5, lr=1e-2, warmup_epochs=0, min_lr=1e-2))
    trainer = _trainer(max_steps=1)
    trainer.fit(model, _loader())
    groups = trainer.optimizers[0].param_groups
    scales = sorted({round(g['lr_scale'], 6) for g in groups})
    # depth 3: stem 0.5^4, blocks 0.5^3, 0.5^2, 0.5^1, final norm + head 1
    assert scales == [0.0625, 0.125, 0.25, 0.5, 1.0]
    for group in groups:  # with min_lr == lr the schedule is flat: lr is exactly lr * scale
        assert group['lr'] == pytest.approx(1e-2 * group['lr_scale'])
    names = {id(p): n for n, p in model.model.named_parameters()}
    head_group = next(g for g in groups if any(names[id(p)] == 'head.weight' for p in g['params']))
    stem_group = next(g for g in groups if any(names[id(p)] == 'patch_embed.proj.weight' for p in g['params']))
    assert head_group['lr_scale'] == 1.0 and stem_group['lr_scale'] == 0.0625


def test_warmup_then_cosine():
    model = ImageClassifier(num_classes=3, **ENCODER, optimization=dict(lr=1e-2, warmup_epochs=1, min_lr=0.0))
    lrs = []

    class Record(L.Callback):
        def on_train_batch_start(self, trainer, *args):
            lrs.append(trainer.optimizers[0].param_groups[0]['lr'])

    _trainer(max_epochs=3, callbacks=[Record()]).fit(model, _loader())
    assert lrs[0] < lrs[1] < lrs[2] < lrs[3]  # linear warmup over the first epoch (4 steps)
    assert lrs[4] == pytest.approx(max(lrs), rel=0.05) and lrs[-1] < 0.2 * max(lrs)  # then cosine down


@pytest.mark.parametrize('limits', [dict(max_steps=12, max_epochs=100), dict(max_steps=12, max_epochs=-1)])
def test_a_max_steps_run_warms_up_for_its_epochs_steps(limits):
    """warmup_epochs counts the loader's batches, not max_steps / max_epochs: a run bounded by max_steps (and a
    max_epochs it never reaches, or none) warms up over one epoch of 4 steps, then decays to min_lr at step 12."""
    model = ImageClassifier(num_classes=3, **ENCODER, optimization=dict(lr=1e-2, warmup_epochs=1, min_lr=0.0))
    lrs = []

    class Record(L.Callback):
        def on_train_batch_start(self, trainer, *args):
            lrs.append(trainer.optimizers[0].param_groups[0]['lr'])

    _trainer(**limits, callbacks=[Record()]).fit(model, _loader())
    assert len(lrs) == 12
    assert lrs[0] < 1e-4 and lrs[0] < lrs[1] < lrs[2] < lrs[3]  # warming up: 4 steps, from lr / 1000
    assert lrs[4] == pytest.approx(max(lrs), rel=0.05) and lrs[-1] < 0.1 * max(lrs)


def test_warmup_steps_win_over_warmup_epochs():
    model = ImageClassifier(num_classes=3, **ENCODER,
                            optimization=dict(lr=1e-2, warmup_epochs=1, warmup_steps=2, min_lr=0.0))
    lrs = []

    class Record(L.Callback):
        def on_train_batch_start(self, trainer, *args):
            lrs.append(trainer.optimizers[0].param_groups[0]['lr'])

    _trainer(max_steps=8, max_epochs=10, callbacks=[Record()]).fit(model, _loader())
    assert lrs[0] < lrs[1] < lrs[2] and lrs[2] == pytest.approx(max(lrs), rel=0.05)


def test_ema_differs_from_live_weights_and_is_what_gets_evaluated():
    model = ImageClassifier(num_classes=3, ema_decay=0.5, eval_ema=True, **ENCODER, optimization=dict(lr=1e-2))
    _trainer(max_epochs=2).fit(model, _loader())
    live = dict(model.model.named_parameters())
    ema = dict(model.ema.module.named_parameters())
    assert any(not torch.allclose(live[n], ema[n]) for n in live)
    assert not any(p.requires_grad for p in ema.values())
    images = Batches().images[:4]
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model.evaluated_model()(images), model.ema.module(images))
        assert not torch.allclose(model.evaluated_model()(images), model.model(images))
    results = _trainer().validate(model, _loader(), verbose=False)[0]
    assert 'val/live_acc1' in results and 'val/acc1' in results
    model.eval_ema = False
    assert model.evaluated_model() is model.model


def test_mixup_cutmix_train_with_soft_targets():
    model = ImageClassifier(num_classes=3, mixup_alpha=0.8, cutmix_alpha=1.0, **ENCODER)
    assert model.mixup is not None
    seen = {}
    original = model.soft_loss.forward

    def spy(logits, targets):
        seen['targets'] = targets
        return original(logits, targets)

    model.soft_loss.forward = spy
    _trainer(max_steps=1).fit(model, _loader())
    targets = seen['targets']
    assert targets.shape == (4, 3) and torch.allclose(targets.sum(-1), torch.ones(4))
    assert (targets.max(-1).values < 1).all()  # mixed and smoothed, not one-hot


def test_bf16_mixed_precision_on_cpu():
    model = ImageClassifier(num_classes=3, **ENCODER)
    trainer = _trainer(max_steps=2, precision='bf16-mixed')
    trainer.fit(model, _loader())
    assert torch.isfinite(trainer.callback_metrics['train/loss'])


def test_fine_tuning_from_local_weights_skips_the_old_head(tmp_path):
    from safetensors.torch import save_file
    source = ImageClassifier(num_classes=7, **ENCODER)
    save_file(source.model.state_dict(), str(tmp_path / 'pretrained.safetensors'))
    model = ImageClassifier(num_classes=3, encoder_weights=str(tmp_path / 'pretrained.safetensors'), **ENCODER)
    torch.testing.assert_close(model.model.blocks[1].mlp.fc1.weight, source.model.blocks[1].mlp.fc1.weight)
    assert model.model.head.weight.shape == (3, 64)


# -- pretrained encoders: pooled features, linear probing, LP-FT, the head's lr ---------------------------------

def _encoder_state(model):
    return {k: v.clone() for k, v in model.model.state_dict().items() if not k.startswith('head.')}


def _changed(before, model):
    after = model.model.state_dict()
    return {k for k, v in before.items() if not torch.equal(v, after[k])}


def test_token_plus_avg_pool_is_the_class_token_beside_the_mean_patch_token():
    model = ImageClassifier(num_classes=3, pool='token+avg', **ENCODER).eval()
    images = torch.randn(2, 3, 32, 32)
    tokens = model.model.forward_features(images)  # (2, 1 + 16, 64)
    expected = torch.cat([tokens[:, 0], tokens[:, 1:].mean(1)], dim=-1) @ model.model.head.weight.T
    assert model.model.head.in_features == 128
    torch.testing.assert_close(model(images), expected + model.model.head.bias)


def test_a_pool_the_encoder_cannot_give_is_refused():
    with pytest.raises(ValueError, match='has none'):
        ImageClassifier(num_classes=3, pool='token', **{**ENCODER, 'encoder_kwargs': {
            **ENCODER['encoder_kwargs'], 'class_token': False, 'global_pool': 'avg'}})
    with pytest.raises(ValueError, match='pool must be one of'):
        ImageClassifier(num_classes=3, pool='max', **ENCODER)


def test_linear_probe_trains_the_head_alone_with_the_encoder_in_eval_mode():
    model = ImageClassifier(num_classes=3, freeze_encoder=True, pool='avg', optimization=dict(lr=1e-2), **{
        **ENCODER, 'encoder_kwargs': {**ENCODER['encoder_kwargs'], 'drop_path_rate': 0.5}})
    before, head = _encoder_state(model), model.model.head.weight.clone()
    modes = []
    model.model.head.register_forward_pre_hook(
        lambda head, args: modes.append((model.model.blocks[0].training, head.training)))
    trainer = _trainer(max_steps=3)
    trainer.fit(model, _loader())
    assert _changed(before, model) == set()
    assert not torch.equal(head, model.model.head.weight)
    assert modes == [(False, True)] * 3  # drop path off on the frozen blocks
    trained = {id(p) for g in trainer.optimizers[0].param_groups for p in g['params']}
    assert trained == {id(p) for p in model.model.head.parameters()}


def test_lp_ft_freezes_the_encoder_for_its_first_steps_then_fine_tunes_it():
    model = ImageClassifier(num_classes=3, linear_probe_steps=2, optimization=dict(lr=1e-2, warmup_steps=0),
                            **ENCODER)
    before = _encoder_state(model)
    changed_at = []

    class Spy(L.Callback):
        def on_train_batch_end(self, trainer, module, *args):
            changed_at.append(bool(_changed(before, module)))

    _trainer(max_steps=4, callbacks=[Spy()]).fit(model, _loader())
    assert changed_at == [False, False, True, True]


def test_the_head_learns_at_head_lr_scale_times_the_top_layer_lr():
    def scales_of(head_lr_scale):
        torch.manual_seed(0)
        model = ImageClassifier(num_classes=3, head_lr_scale=head_lr_scale, **ENCODER,
                                optimization=dict(layer_decay=0.5, lr=1e-3, warmup_epochs=0, min_lr=1e-3))
        trainer = _trainer(max_steps=1)
        trainer.fit(model, _loader())
        names = {id(p): n for n, p in model.model.named_parameters()}
        groups = trainer.optimizers[0].param_groups
        for group in groups:
            assert group['lr'] == pytest.approx(1e-3 * group['lr_scale'])
        scales = {names[id(p)]: (g['lr_scale'], g['weight_decay']) for g in groups for p in g['params']}
        assert len(scales) == len(names)  # every parameter is optimised, once
        return scales

    plain, scaled = scales_of(1.0), scales_of(20.0)  # 1.0: timm's own groups, built from the module
    assert scaled['head.weight'] == (20.0, plain['head.weight'][1]) and scaled['head.bias'][0] == 20.0
    assert {k: v for k, v in scaled.items() if not k.startswith('head.')} == {
        k: v for k, v in plain.items() if not k.startswith('head.')}


def test_pooled_evaluation_records_no_graph():
    model = ImageClassifier(num_classes=3, pool='token+avg', **ENCODER).eval()
    with torch.no_grad():
        assert not model(torch.randn(2, 3, 32, 32)).requires_grad
