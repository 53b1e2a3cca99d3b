"""Faults: a run killed with SIGKILL resumes from `last` to the same result; checkpoints are written atomically."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import fsspec.implementations.local as fsspec_local
import lightning as L
import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[2]


def _final_val_acc(run: Path) -> float:
    rows = [r for r in csv.DictReader(open(run / 'metrics.csv')) if r.get('val/acc1')]
    return float(rows[-1]['val/acc1'])


def _vlm(args, cwd):
    env = {**os.environ, 'PYTHONPATH': str(REPO)}
    return subprocess.run([sys.executable, '-m', 'vlm.cli', *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope='module')
def shapes_classification(tmp_path_factory):
    from vlm.data.shapes import generate_shapes
    root = tmp_path_factory.mktemp('shapes')
    generate_shapes(root / 'shapes', train_images=4, val_images=4, image_size=64, classification_images_per_class=24,
                    classification_val_images_per_class=8, classification_image_size=32, workers=1)
    return root / 'shapes' / 'classification'


def _config(tmp_path, root, name, callbacks=()):
    config = {
        'seed_everything': 0,
        'trainer': {'max_epochs': 4, 'accelerator': 'cpu', 'enable_progress_bar': False, 'enable_model_summary': False,
                    'log_every_n_steps': 1, 'callbacks': list(callbacks),
                    'logger': {'class_path': 'lightning.pytorch.loggers.CSVLogger',
                               'init_args': {'save_dir': str(tmp_path / 'runs'), 'name': name}}},
        'model': {'class_path': 'vlm.tasks.ImageClassifier', 'init_args': {
            'encoder': 'vlm_vit_tiny_patch16_rope_rms', 'optimization': {'lr': 2e-3, 'warmup_epochs': 0.5},
            'label_smoothing': 0.0,
            'encoder_kwargs': {'patch_size': 8, 'img_size': 32, 'depth': 2, 'embed_dim': 64, 'num_heads': 2}}},
        'data': {'class_path': 'vlm.data.ClassificationDataModule', 'init_args': {
            'root': str(root), 'image_size': 32, 'crop_pct': 1.0, 'batch_size': 16, 'num_workers': 0,
            'color_jitter': 0.0}},
    }
    path = tmp_path / f'{name}.yaml'
    path.write_text(yaml.safe_dump(config))
    return path


def test_sigkill_mid_training_then_resume_from_last(tmp_path, shapes_classification):
    reference = _vlm(['fit', '--config', str(_config(tmp_path, shapes_classification, 'reference'))], tmp_path)
    assert reference.returncode == 0, reference.stderr[-3000:]
    reference_run = tmp_path / 'runs' / 'reference' / 'version_0'

    marker = tmp_path / 'killed_at'
    killer = {'class_path': 'tests.helpers.KillAtStep', 'init_args': {'step': 20, 'marker': str(marker)}}
    killed = _vlm(['fit', '--config', str(_config(tmp_path, shapes_classification, 'killed', [killer]))], tmp_path)
    assert killed.returncode == -9 and marker.exists()  # really killed, mid-training (epoch 3 of 4)
    last = tmp_path / 'runs' / 'killed' / 'version_0' / 'checkpoints' / 'last.ckpt'
    assert torch.load(last, weights_only=True)['global_step'] < 20

    resumed = _vlm(['fit', '--config', str(_config(tmp_path, shapes_classification, 'killed')), '--ckpt_path', 'last'],
                   tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    resumed_run = tmp_path / 'runs' / 'killed' / 'version_1'
    final = torch.load(resumed_run / 'checkpoints' / 'last.ckpt', weights_only=True)
    expected = torch.load(reference_run / 'checkpoints' / 'last.ckpt', weights_only=True)
    assert final['global_step'] == expected['global_step'] and final['epoch'] == expected['epoch']
    assert abs(_final_val_acc(resumed_run) - _final_val_acc(reference_run)) <= 0.1


def test_checkpoint_is_never_half_written(tmp_path, monkeypatch):
    """Lightning writes checkpoints through an fsspec transaction: a temp file renamed into place on success."""
    trainer = L.Trainer(accelerator='cpu', logger=False, enable_progress_bar=False, enable_model_summary=False)
    model = torch.nn.Linear(4, 4)
    path = tmp_path / 'last.ckpt'
    trainer.strategy.checkpoint_io.save_checkpoint({'state_dict': model.state_dict(), 'v': 1}, path)
    good = path.read_bytes()

    original_write = fsspec_local.LocalFileOpener.write

    def write_half_then_die(self, data):
        original_write(self, data[: len(data) // 2])
        raise OSError('disk vanished mid-write')

    monkeypatch.setattr(fsspec_local.LocalFileOpener, 'write', write_half_then_die)
    with pytest.raises(OSError, match='mid-write'):
        trainer.strategy.checkpoint_io.save_checkpoint({'state_dict': model.state_dict(), 'v': 2}, path)
    assert path.read_bytes() == good  # the old checkpoint is intact, no partial file in its place
    assert [p.name for p in tmp_path.iterdir()] == ['last.ckpt']
