"""LoRA through peft on the vision-language model: adapters only (and the parts named trainable) learn, merged and
unmerged adapters give the same logits, and `vlm fit` with LoRA exports a folder that loads without peft."""
import json

import pytest
import torch

from vlm.cli import main as vlm_main
from vlm.language.inference import VisionLanguagePredictor
from vlm.tasks import VisionLanguageTask

from .test_task_cli import TINY_ENCODER, _config  # the shapes fixture: tests/language/conftest.py
from .tiny import TINY_DECODER, random_images, tiny_tokenizer

LORA = {'parts': ['decoder'], 'r': 4, 'alpha': 8, 'dropout': 0.0}


def _task(**overrides) -> VisionLanguageTask:
    torch.manual_seed(0)
    task = VisionLanguageTask(encoder='vlm_vit_tiny_patch16_rope_rms', encoder_kwargs=TINY_ENCODER,
                              decoder=TINY_DECODER, pixel_shuffle=2, image_size=64, **overrides)
    task.build(tiny_tokenizer())
    return task


def _batch(task):
    from vlm.language.prompts import caption_prompt, target_text
    return task.processor([caption_prompt()] * 2, random_images(2, size=64), [target_text('a red circle')] * 2,
                          padding_side='right')


def test_only_the_adapters_and_the_trainable_parts_learn():
    task = _task(trainable=['projector'], lora=LORA)
    before = {name: value.clone() for name, value in task.model.state_dict().items()}
    optimizer = torch.optim.AdamW([p for group in task.optimizer_params() for p in group['params']], lr=1e-2)
    task.train()
    for _ in range(3):
        loss = task.model(**_batch(task)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    changed = {name for name, value in task.model.state_dict().items() if not torch.equal(before[name], value)}
    assert changed and all('lora_' in name or name.startswith('projector.') for name in changed)
    assert any('lora_B' in name for name in changed) and any(name.startswith('projector.') for name in changed)
    assert not any(name.startswith('encoder.') for name in changed)
    with pytest.raises(ValueError, match='not both'):
        VisionLanguageTask(trainable=['decoder'], lora=LORA)


def test_merged_and_unmerged_adapters_give_the_same_logits():
    task = _task(trainable=['projector'], lora=LORA).eval()
    with torch.no_grad():
        for name, parameter in task.model.named_parameters():
            if 'lora_B' in name:
                parameter.normal_(0, 0.1)  # B starts at zero: make the adapters do something
        batch = _batch(task)
        unmerged = task.model(**batch).logits
        model = task.exportable_model()
        assert not any('lora' in name for name in model.state_dict())
        torch.testing.assert_close(model(**batch).logits, unmerged, rtol=1e-4, atol=1e-5)


def test_fit_with_lora_exports_a_merged_folder_that_loads_without_peft(tmp_path, shapes):  # noqa: F811
    config = _config(tmp_path, shapes, trainable=['projector', 'encoder'], lora=LORA)
    assert vlm_main(['fit', '--config', str(config), '--trainer.limit_val_batches', '0']) == 0
    checkpoint = tmp_path / 'runs' / 'vl' / 'version_0' / 'checkpoints' / 'last.ckpt'
    out = tmp_path / 'export'
    assert vlm_main(['export', '--ckpt', str(checkpoint), '--out', str(out)]) == 0
    assert 'peft' not in (out / 'config.json').read_text() and 'lora' not in json.dumps(
        list(VisionLanguagePredictor.from_pretrained(out).model.state_dict()))
    task = VisionLanguageTask.load_from_checkpoint(checkpoint).eval()
    batch = _batch(task)
    with torch.no_grad():
        unmerged = task.model(**batch).logits
        exported = VisionLanguagePredictor.from_pretrained(out).model(**batch).logits
    torch.testing.assert_close(exported, unmerged, rtol=1e-4, atol=1e-5)
