"""The `vlm` entry point with the classification task: fit / validate / test / predict, resume, configs, faults."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.data import fixtures
from vlm.cli import main as vlm_main

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, root: Path, **model_args) -> Path:
    config = {
        'seed_everything': 0,
        'trainer': {
            'max_epochs': 2, 'accelerator': 'cpu', 'devices': 1, 'enable_progress_bar': False,
            'enable_model_summary': False, 'log_every_n_steps': 1,
            'logger': {'class_path': 'lightning.pytorch.loggers.CSVLogger',
                       'init_args': {'save_dir': str(tmp_path / 'runs'), 'name': 'cls'}},
        },
        'model': {'class_path': 'vlm.tasks.ImageClassifier', 'init_args': {
            'encoder': 'vlm_vit_tiny_patch16_rope_rms',
            'encoder_kwargs': {'patch_size': 8, 'img_size': 32, 'depth': 2, 'embed_dim': 64, 'num_heads': 2},
            'optimization': {'lr': 1e-3, 'warmup_epochs': 0.5}, **model_args}},
        'data': {'class_path': 'vlm.data.ClassificationDataModule', 'init_args': {
            'root': str(root), 'image_size': 32, 'crop_pct': 1.0, 'batch_size': 4, 'num_workers': 0}},
    }
    path = tmp_path / 'config.yaml'
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def imagenet(tmp_path):
    fixtures.imagenet(tmp_path / 'imagenet', per_class=4)
    return tmp_path / 'imagenet'


def _version_dir(tmp_path, version=0):
    return tmp_path / 'runs' / 'cls' / f'version_{version}'


def test_fit_validate_test_predict_round_trip(tmp_path, imagenet):
    config = _config(tmp_path, imagenet, ema_decay=0.9)
    assert vlm_main(['fit', '--config', str(config)]) == 0
    run = _version_dir(tmp_path)
    checkpoints = {p.name for p in (run / 'checkpoints').iterdir()}
    assert 'last.ckpt' in checkpoints and any(name.startswith('best-epoch') for name in checkpoints)
    saved = yaml.safe_load((run / 'config.yaml').read_text())  # the resolved config is saved with the run
    assert saved['model']['init_args']['encoder_kwargs']['embed_dim'] == 64
    hparams = yaml.safe_load((run / 'hparams.yaml').read_text())
    assert hparams['num_classes'] == 2  # linked from the datamodule
    assert hparams['class_names'] == ['n01440764', 'n01443537']
    metrics = (run / 'metrics.csv').read_text()
    assert 'val/acc1' in metrics and 'val/acc5' in metrics and 'val/ema_acc1' in metrics

    last = str(run / 'checkpoints' / 'last.ckpt')
    assert vlm_main(['validate', '--config', str(config), '--ckpt_path', last]) == 0
    assert vlm_main(['test', '--config', str(config), '--ckpt_path', last]) == 0
    assert vlm_main(['predict', '--config', str(config), '--ckpt_path', last]) == 0
    predictions = [json.loads(line) for line in
                   (_version_dir(tmp_path, 3) / 'predictions' / 'predictions.jsonl').read_text().splitlines()]
    assert len(predictions) == 8
    for item in predictions:
        assert Path(item['path']).is_file()
        assert {t['class'] for t in item['top']} == {'n01440764', 'n01443537'}
        assert abs(sum(t['probability'] for t in item['top']) - 1) < 1e-4


def test_resume_continues_the_global_step(tmp_path, imagenet):
    config = _config(tmp_path, imagenet)
    assert vlm_main(['fit', '--config', str(config), '--trainer.max_epochs', '1']) == 0
    first = torch.load(_version_dir(tmp_path) / 'checkpoints' / 'last.ckpt', weights_only=True)
    assert vlm_main(['fit', '--config', str(config), '--trainer.max_epochs', '3', '--ckpt_path', 'last']) == 0
    # ckpt_path last finds the newest run's last.ckpt; steps continue from there instead of restarting
    resumed = torch.load(_version_dir(tmp_path, 1) / 'checkpoints' / 'last.ckpt', weights_only=True)
    assert first['global_step'] == 2 and first['epoch'] == 0
    assert resumed['global_step'] == 6 and resumed['epoch'] == 2


def test_every_config_parses(tmp_path):
    configs = sorted((REPO / 'configs').rglob('*.yaml'))
    assert configs
    for config in configs:
        result = subprocess.run([sys.executable, '-m', 'vlm.cli', 'fit', '--config', str(config), '--print_config'],
                                capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert result.returncode == 0, f"{config}:\n{result.stderr[-2000:]}"
        printed = yaml.safe_load(result.stdout)
        assert printed['model']['class_path'] and printed['data']['class_path']


def test_unknown_class_path_is_one_clear_message(tmp_path, imagenet, capsys):
    config = _config(tmp_path, imagenet)
    text = config.read_text().replace('vlm.tasks.ImageClassifier', 'vlm.tasks.NoSuchTask')
    config.write_text(text)
    with pytest.raises(SystemExit) as exit_info:
        vlm_main(['fit', '--config', str(config)])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err
    assert 'vlm.tasks.NoSuchTask' in err and 'Traceback' not in err


def test_missing_data_root_is_one_clear_message(tmp_path, capsys):
    config = _config(tmp_path, tmp_path / 'nowhere')
    assert vlm_main(['fit', '--config', str(config)]) == 1
    err = capsys.readouterr().err
    assert 'nowhere' in err and 'data root not found' in err and 'Traceback' not in err


def test_checkpoint_with_another_num_classes_is_refused_clearly(tmp_path, imagenet, capsys):
    config = _config(tmp_path, imagenet)
    assert vlm_main(['fit', '--config', str(config), '--trainer.max_epochs', '1']) == 0
    last = str(_version_dir(tmp_path) / 'checkpoints' / 'last.ckpt')
    fixtures.write_image(imagenet / 'train' / 'n09999999' / 'x.JPEG', 40, 30)  # a third class
    assert vlm_main(['validate', '--config', str(config), '--ckpt_path', last]) == 1
    err = capsys.readouterr().err
    assert 'model.head.weight: checkpoint (2, 64) vs model (3, 64)' in err and 'Traceback' not in err


def test_console_script_lists_all_commands():
    result = subprocess.run(['vlm', '--help'], capture_output=True, text=True, timeout=60,
                            env={**os.environ, 'PATH': f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    assert result.returncode == 0
    for command in ('fit', 'validate', 'test', 'predict', 'data', 'evaluate-coco'):
        assert f'  {command} ' in result.stdout


def test_the_datamodule_normalises_as_the_model_encoder_expects(tmp_path, imagenet):
    """The config names the encoder once: the CLI links its normalisation (timm's pretrained config) to the
    datamodule; an encoder trained with other statistics gets those."""
    from vlm.cli.lightning import VlmCLI

    config = _config(tmp_path, imagenet)
    vlm_encoder = VlmCLI(args=['--config', str(config)], run=False)
    assert vlm_encoder.datamodule.stats == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    other = VlmCLI(args=['--config', str(config), '--model.init_args.encoder', 'vit_tiny_patch16_224.augreg_in21k',
                         '--model.init_args.encoder_kwargs', '{"img_size": 32}'], run=False)
    assert other.datamodule.stats == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
