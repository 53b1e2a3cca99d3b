"""`vlm.models`: the vision models as plain modules, without Lightning: built by one function, fed a task
checkpoint's weights, run; and checkpoints of vlm 0.1 (before the model layer) load into today's tasks."""
from pathlib import Path

import lightning as L
import pytest
import torch

import vlm
from vlm.models import SemanticSegmentationModel, build_detector
from vlm.tasks import ImageClassifier, ObjectDetector, SemanticSegmenter
from vlm.tasks.checkpoint_migration import migrate_hparams

ENCODER = dict(encoder='vlm_vit_tiny_patch16_rope_rms',
               encoder_kwargs=dict(patch_size=8, img_size=64, depth=2, embed_dim=64, num_heads=2))


def _save(task, path: Path, hparams: dict = None, state_dict: dict = None) -> Path:
    torch.save({'state_dict': state_dict or task.state_dict(), 'hyper_parameters': hparams or dict(task.hparams)},
               path)
    return path


@pytest.mark.parametrize('detector', ['fcos', 'retinanet', 'maskrcnn'])
def test_a_detector_runs_without_lightning_from_a_task_checkpoint(tmp_path, detector):
    task = ObjectDetector(num_classes=4, detector=detector, pyramid_channels=32, min_size=64, max_size=64, **ENCODER)
    checkpoint = _save(task, tmp_path / 'task.ckpt')
    torch.manual_seed(1)  # another initialisation: the weights must come from the checkpoint
    model = build_detector(detector, num_classes=4, pyramid_channels=32, min_size=64, max_size=64, **ENCODER)
    assert isinstance(model, torch.nn.Module) and not isinstance(model, L.LightningModule)
    report = vlm.load_weights(model, checkpoint, strict=True)
    assert not report.missing and not report.unexpected
    images = [torch.rand(3, 64, 64), torch.rand(3, 48, 64)]
    with torch.no_grad():
        expected, got = task.model.eval()(images), model.eval()(images)
    for one, other in zip(expected, got):
        assert one.keys() == other.keys() and {'boxes', 'scores', 'labels'} <= set(one)
        for key in one:
            torch.testing.assert_close(one[key], other[key])


def test_the_segmenter_runs_without_lightning_from_a_task_checkpoint(tmp_path):
    task = SemanticSegmenter(num_classes=5, pyramid_channels=32, head_channels=32, **ENCODER).eval()
    checkpoint = _save(task, tmp_path / 'task.ckpt')
    torch.manual_seed(1)
    model = SemanticSegmentationModel(num_classes=5, pyramid_channels=32, head_channels=32, inference='slide',
                                      window=32, stride=24, **ENCODER).eval()
    vlm.load_weights(model, checkpoint, strict=True)
    images = torch.rand(2, 3, 45, 70)
    with torch.no_grad():
        logits = model.infer(images)
        assert logits.shape == (2, 5, 45, 70)
        task.model.set_inference('slide', window=32, stride=24)
        torch.testing.assert_close(logits, task.infer(images))


def test_a_vlm_0_1_segmentation_checkpoint_loads(tmp_path):
    """vlm 0.1 held the backbone and head on the task itself and named the initial weights and the optimizer
    settings differently: both are renamed on load, and the weights arrive."""
    task = SemanticSegmenter(num_classes=5, pyramid_channels=32, head_channels=32, **ENCODER)
    old_keys = {key[len('model.'):]: value for key, value in task.state_dict().items()}
    old_hparams = {**{k: v for k, v in task.hparams.items() if k != 'optimization'}, 'pretrained_weights': None,
                   'lr': 2e-3, 'weight_decay': 0.05, 'schedule': 'poly', 'poly_power': 0.9}
    path = _save(task, tmp_path / 'old.ckpt', old_hparams, old_keys)
    loaded = SemanticSegmenter.load_from_checkpoint(path)
    assert loaded.optimization.lr == 2e-3 and loaded.optimization.schedule == 'poly'
    for name, value in task.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[name]), name


def test_old_hyperparameter_names_are_migrated():
    migrated = migrate_hparams({'encoder_checkpoint': 'a.ckpt', 'pretrained_skip_head': False, 'lr': 1e-3,
                                'min_lr': 0.0, '_instantiator': 'x', 'num_classes': 3})
    assert migrated == {'encoder_weights': 'a.ckpt', 'load_head': True, 'num_classes': 3,
                        'optimization': {'lr': 1e-3, 'min_lr': 0.0}}
    classifier = ImageClassifier(**{**migrated, 'encoder_weights': None}, **ENCODER)
    assert classifier.optimization.lr == 1e-3 and classifier.optimization.weight_decay == 0.05  # task default
