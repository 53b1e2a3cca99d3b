"""Faults: a run killed with SIGKILL resumes from `last` to the same result; checkpoints are written atomically."""
import csv
import json
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
                    'log_every_n_steps': 1, 'callbacks': list(callbacks), 'deterministic': True,
                    'logger': {'class_path': 'lightning.pytorch.loggers.CSVLogger',
                               'init_args': {'save_dir': str(tmp_path / 'runs'), 'name': name}}},
        'model': {'class_path': 'vlm.tasks.ImageClassifier', 'init_args': {
            'encoder': 'vlm_vit_tiny_patch16_rope_rms', 'optimization': {'lr': 2e-3, 'warmup_epochs': 0.5},
            'label_smoothing': 0.0,
            'encoder_kwargs': {'patch_size': 8, 'img_size': 32, 'depth': 2, 'embed_dim': 64, 'num_heads': 2}}},
        'data': {'class_path': 'vlm.data.ClassificationDataModule', 'init_args': {
            'root': str(root), 'image_size': 32, 'crop_pct': 1.0, 'batch_size': 16, 'num_workers': 2}},
    }
    path = tmp_path / f'{name}.yaml'
    path.write_text(yaml.safe_dump(config))
    return path


def _steps_and_epochs(run: Path) -> tuple:
    rows = [r for r in csv.DictReader(open(run / 'metrics.csv')) if r.get('train/loss')]
    return [int(r['step']) for r in rows], sorted({int(r['epoch']) for r in rows})


def test_sigkill_mid_epoch_then_resume_from_last_continues_the_killed_run(tmp_path, shapes_classification):
    """Killed with SIGKILL in epoch 2 of 4 (two loader workers), `--ckpt_path last` finds the killed run's
    last.ckpt (written after epoch 1, in its own version folder), restores its global step and optimizer state,
    trains epochs 2 and 3 only, and ends with the weights of an uninterrupted run, exactly (deterministic)."""
    def config(name, *callbacks):
        return str(_config(tmp_path, shapes_classification, name, callbacks))

    reference = _vlm(['fit', '--config', config('reference')], tmp_path)
    assert reference.returncode == 0, reference.stderr[-3000:]
    marker, started = tmp_path / 'killed_at', tmp_path / 'started.json'
    killer = {'class_path': 'tests.helpers.KillAtStep', 'init_args': {'step': 21, 'marker': str(marker)}}
    killed = _vlm(['fit', '--config', config('killed', killer)], tmp_path)
    assert killed.returncode == -9 and marker.exists()  # really killed, mid-epoch
    last = tmp_path / 'runs' / 'killed' / 'version_0' / 'checkpoints' / 'last.ckpt'
    saved = torch.load(last, weights_only=True)
    assert saved['global_step'] == 18 and saved['epoch'] == 1  # 9 steps an epoch: the end of epoch 1

    recorder = {'class_path': 'tests.helpers.RecordStart', 'init_args': {'path': str(started)}}
    resumed = _vlm(['fit', '--config', config('killed', recorder), '--ckpt_path', 'last'], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f'restoring {last} (epoch 1, global step 18)' in resumed.stderr
    restored = json.loads(started.read_text())
    assert restored == {'global_step': 18, 'epoch': 2, 'optimizer_step': 18.0}  # not a restart: step 0
    steps, epochs = _steps_and_epochs(tmp_path / 'runs' / 'killed' / 'version_1')
    assert min(steps) >= 18 and epochs == [2, 3]  # epochs 0 and 1 are not re-run
    final = torch.load(tmp_path / 'runs' / 'killed' / 'version_1' / 'checkpoints' / 'last.ckpt', weights_only=True)
    expected = torch.load(tmp_path / 'runs' / 'reference' / 'version_0' / 'checkpoints' / 'last.ckpt',
                          weights_only=True)
    assert final['global_step'] == expected['global_step'] == 36
    for name, tensor in expected['state_dict'].items():
        assert torch.equal(final['state_dict'][name], tensor), name


def test_last_without_a_checkpoint_says_it_starts_from_scratch(tmp_path, shapes_classification):
    result = _vlm(['fit', '--config', str(_config(tmp_path, shapes_classification, 'fresh')), '--ckpt_path', 'last',
                   '--trainer.max_epochs', '1'], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert '--ckpt_path last: no last.ckpt under' in result.stderr and 'starting from scratch' in result.stderr


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
