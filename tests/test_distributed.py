"""DDP with 2 CPU processes through the `vlm` command: it trains, writes one checkpoint, and evaluates to the same
metrics as one process, with COCO predictions gathered exactly once per image."""
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
import yaml

from tests.data import fixtures
from vlm.data.shapes import generate_shapes

TINY_ENCODER = dict(patch_size=8, img_size=64, depth=2, embed_dim=64, num_heads=2)


def _run(args: List[str], cwd: Path) -> None:
    result = subprocess.run([sys.executable, '-m', 'vlm.cli', *args], cwd=cwd, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


def _write(tmp_path: Path, name: str, config: Dict[str, Any]) -> Path:
    path = tmp_path / f'{name}.yaml'
    path.write_text(yaml.safe_dump(config))
    return path


def _trainer(tmp_path: Path, name: str, **kwargs) -> Dict[str, Any]:
    return {'accelerator': 'cpu', 'devices': 1, 'enable_progress_bar': False, 'enable_model_summary': False,
            'log_every_n_steps': 1, 'num_sanity_val_steps': 0,
            'logger': {'class_path': 'lightning.pytorch.loggers.CSVLogger',
                       'init_args': {'save_dir': str(tmp_path / 'runs'), 'name': name}}, **kwargs}


def _last_metrics(run: Path) -> Dict[str, float]:
    lines = (run / 'metrics.csv').read_text().splitlines()
    header = lines[0].split(',')
    values: Dict[str, float] = {}
    for line in lines[1:]:
        for key, value in zip(header, line.split(',')):
            if value:
                values[key] = float(value)
    return values


def _validate_on_one_and_two_processes(config: Path, checkpoint: str, tmp_path: Path, name: str) -> Tuple[Path, Path]:
    """`vlm validate` of `checkpoint` with 1 process, then with 2 (DDP): the two new run directories (the fit
    before them is version_0)."""
    _run(['validate', '--config', str(config), '--ckpt_path', checkpoint], tmp_path)
    _run(['validate', '--config', str(config), '--ckpt_path', checkpoint, '--trainer.devices', '2',
          '--trainer.strategy', 'ddp'], tmp_path)
    return tmp_path / 'runs' / name / 'version_1', tmp_path / 'runs' / name / 'version_2'


def test_classification_ddp_trains_checkpoints_once_and_validates_like_one_process(tmp_path):
    fixtures.imagenet(tmp_path / 'imagenet', per_class=4)  # 8 train, 8 val images: 4 per rank, no padding
    config = _write(tmp_path, 'cls', {
        'seed_everything': 0,
        'trainer': _trainer(tmp_path, 'cls', max_epochs=2),
        'model': {'class_path': 'vlm.tasks.ImageClassifier', 'init_args': {
            'encoder': 'vlm_vit_tiny_patch16_rope_rms', 'encoder_kwargs': TINY_ENCODER,
            'optimization': {'lr': 1e-3}}},
        'data': {'class_path': 'vlm.data.ClassificationDataModule', 'init_args': {
            'root': str(tmp_path / 'imagenet'), 'image_size': 32, 'crop_pct': 1.0, 'batch_size': 2,
            'num_workers': 0}},
    })
    _run(['fit', '--config', str(config), '--trainer.devices', '2', '--trainer.strategy', 'ddp'], tmp_path)
    runs = sorted((tmp_path / 'runs' / 'cls').iterdir())
    assert len(runs) == 1  # one run directory, written by rank 0 only
    checkpoints = sorted(p.name for p in (runs[0] / 'checkpoints').iterdir())
    assert 'last.ckpt' in checkpoints and len(checkpoints) == 2  # last + best, once
    last = str(runs[0] / 'checkpoints' / 'last.ckpt')
    single, ddp = map(_last_metrics, _validate_on_one_and_two_processes(config, last, tmp_path, 'cls'))
    assert single['val/acc1'] == pytest.approx(ddp['val/acc1'], abs=1e-6)
    assert single['val/loss'] == pytest.approx(ddp['val/loss'], rel=1e-4)


def test_detection_ddp_gathers_each_image_once_and_scores_like_one_process(tmp_path):
    shapes = generate_shapes(tmp_path / 'shapes', train_images=4, val_images=8, image_size=64,
                             classification_images_per_class=0, classification_val_images_per_class=0, workers=1)
    config = _write(tmp_path, 'det', {
        'seed_everything': 0,
        'trainer': _trainer(tmp_path, 'det', max_steps=2, limit_val_batches=1.0),
        'model': {'class_path': 'vlm.tasks.ObjectDetector', 'init_args': {
            'detector': 'fcos', 'encoder': 'vlm_vit_tiny_patch16_rope_rms', 'encoder_kwargs': TINY_ENCODER,
            'pyramid_channels': 32, 'min_size': 64, 'max_size': 64}},
        'data': {'class_path': 'vlm.data.CocoDataModule', 'init_args': {
            'root': str(shapes), 'train_images': 'images/train', 'val_images': 'images/val',
            'train_annotations': 'annotations/instances_train.json',
            'val_annotations': 'annotations/instances_val.json', 'image_size': 64, 'batch_size': 2,
            'num_workers': 0}},
    })
    _run(['fit', '--config', str(config)], tmp_path)
    last = str(tmp_path / 'runs' / 'det' / 'version_0' / 'checkpoints' / 'last.ckpt')
    validation_runs = _validate_on_one_and_two_processes(config, last, tmp_path, 'det')
    results = []
    for run in validation_runs:
        files = list(run.glob('coco_results_val_*.json'))
        assert len(files) == 1  # rank 0 writes the gathered results, once
        results.append(json.loads(files[0].read_text()))
    single, ddp = results
    key = lambda r: (r['image_id'], r['category_id'], tuple(round(v, 3) for v in r['bbox']), round(r['score'], 5))
    assert sorted(map(key, single)) == sorted(map(key, ddp))  # every image's detections, once, none lost
    val_ids = {image['id'] for image in json.loads((shapes / 'annotations' / 'instances_val.json').read_text())['images']}
    assert {r['image_id'] for r in ddp} <= val_ids
    single_metrics, ddp_metrics = map(_last_metrics, validation_runs)
    assert single_metrics['val/AP'] == pytest.approx(ddp_metrics['val/AP'], abs=1e-6)
    assert single_metrics['val/AR100'] == pytest.approx(ddp_metrics['val/AR100'], abs=1e-6)


def test_vision_language_fsdp2_sharded_checkpoint_loads_back_to_the_same_outputs(tmp_path):
    from tests.language.tiny import TINY_DECODER

    shapes = generate_shapes(tmp_path / 'shapes', train_images=8, val_images=4, image_size=64,
                             classification_images_per_class=0, classification_val_images_per_class=0, workers=1)
    fsdp2 = {'class_path': 'lightning.pytorch.strategies.ModelParallelStrategy',
             'init_args': {'data_parallel_size': 2, 'tensor_parallel_size': 1}}
    config = _write(tmp_path, 'vl', {
        'seed_everything': 0,
        'trainer': _trainer(tmp_path, 'vl', max_epochs=1, limit_train_batches=2, devices=2, strategy=fsdp2),
        'model': {'class_path': 'vlm.tasks.VisionLanguageTask', 'init_args': {
            'encoder': 'vlm_vit_tiny_patch16_rope_rms', 'encoder_kwargs': TINY_ENCODER,
            'decoder': {**TINY_DECODER, 'max_position_embeddings': 128},
            'pixel_shuffle': 2, 'image_size': 64, 'tokenizer_vocab_size': 300, 'max_new_tokens': 3,
            'monitor': 'val/loss', 'optimization': {'lr': 1e-3}}},
        'data': {'class_path': 'vlm.data.VisionLanguageDataModule', 'init_args': {
            'root': str(shapes), 'tasks': ['captions'], 'train_images': 'images/train', 'val_images': 'images/val',
            'train_captions': 'annotations/captions_train.json', 'val_captions': 'annotations/captions_val.json',
            'batch_size': 2, 'num_workers': 0}},
    })
    _run(['fit', '--config', str(config)], tmp_path)
    last = tmp_path / 'runs' / 'vl' / 'version_0' / 'checkpoints' / 'last.ckpt'
    assert last.is_dir() and len(list(last.glob('*.distcp'))) == 2  # one shard per rank
    _run(['validate', '--config', str(config), '--ckpt_path', str(last)], tmp_path)
    trained, restored = (_last_metrics(tmp_path / 'runs' / 'vl' / f'version_{v}') for v in (0, 1))
    assert trained['val/loss'] == pytest.approx(restored['val/loss'], rel=1e-5)
    assert trained['val/CIDEr'] == pytest.approx(restored['val/CIDEr'], abs=1e-9)
