"""Bad input through the `vlm` commands ends with one line naming the file and field (or a counted skip), under the
shipped two loader workers: corrupt files and decompression bombs in datasets and in `vlm caption`, very long thin
images in detection, broken model folders, bad option values, unsafe or foreign checkpoints, bad ground truth,
a non-empty export folder; and the commands stay quiet and answer `--help` without importing torch."""
import csv
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.data import fixtures
from tests.language.tiny import export_tiny_model
from tests.tasks.test_cli_classification import _config as classification_config
from vlm.cli import main as vlm_main
from vlm.data import DataError
from vlm.io.images import MAX_PIXELS_VARIABLE, load_rgb
from vlm.tasks import ObjectDetector

REPO = Path(__file__).resolve().parents[1]


def _error_lines(err: str, command: str):
    """The `vlm COMMAND: error: ...` lines of stderr; none of stderr is a traceback."""
    assert 'Traceback' not in err and 'Caught' not in err, err[-2000:]
    return [line for line in err.splitlines() if line.startswith(f'vlm {command}: error: ')]


@pytest.fixture
def imagenet(tmp_path):
    fixtures.imagenet(tmp_path / 'imagenet', per_class=4)
    return tmp_path / 'imagenet'


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory) -> Path:
    """A tiny exported vision-language model folder (what `vlm export` writes)."""
    return export_tiny_model(tmp_path_factory.mktemp('model'))


def _workers(config: Path, **data_args) -> Path:
    """The config with the shipped two loader workers (and more data arguments)."""
    data = yaml.safe_load(config.read_text())
    data['data']['init_args'].update(num_workers=2, **data_args)
    config.write_text(yaml.safe_dump(data))
    return config


def test_a_corrupt_image_read_in_a_loader_worker_is_one_line(tmp_path, imagenet, capsys):
    bad = next((imagenet / 'train').rglob('*.JPEG'))
    bad.write_bytes(bad.read_bytes()[:60])
    config = _workers(classification_config(tmp_path, imagenet))
    assert vlm_main(['fit', '--config', str(config), '--trainer.max_epochs', '1']) == 1
    lines = _error_lines(capsys.readouterr().err, 'fit')
    assert len(lines) == 1 and str(bad) in lines[0] and 'corrupt or truncated image' in lines[0], lines


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path, monkeypatch):
    bomb = tmp_path / 'bomb.png'
    assert fixtures.write_decompression_bomb(bomb) < 60_000  # 48 KB on disk, 20000 x 20000 decoded
    with pytest.raises(DataError, match=r"bomb.png, field 'image size': image is 20000x20000 = 400000000 pixels"):
        load_rgb(bomb)
    small = tmp_path / 'small.png'
    fixtures.write_image(small, 40, 30)
    assert load_rgb(small).size == (40, 30)
    monkeypatch.setenv(MAX_PIXELS_VARIABLE, '1000')  # the limit is configurable (and inherited by workers)
    with pytest.raises(DataError, match='1200 pixels, more than the limit of 1000'):
        load_rgb(small)


def test_a_decompression_bomb_in_a_dataset_is_a_counted_skip_under_two_workers(tmp_path, imagenet):
    fixtures.write_decompression_bomb(imagenet / 'train' / 'n01440764' / 'bomb.JPEG')
    config = _workers(classification_config(tmp_path, imagenet), skip_bad_samples=True)
    assert vlm_main(['fit', '--config', str(config), '--trainer.max_epochs', '1']) == 0
    rows = list(csv.DictReader((tmp_path / 'runs' / 'cls' / 'version_0' / 'metrics.csv').open()))
    assert [float(row['train/skipped_samples']) for row in rows if row.get('train/skipped_samples')] == [1.0]


def test_the_data_module_pixel_limit_reaches_the_workers(tmp_path, imagenet, capsys, monkeypatch):
    monkeypatch.setenv(MAX_PIXELS_VARIABLE, '89478485')  # restored after the test: the datamodule sets it
    config = _workers(classification_config(tmp_path, imagenet), max_image_pixels=100)
    assert vlm_main(['fit', '--config', str(config), '--trainer.max_epochs', '1']) == 1
    lines = _error_lines(capsys.readouterr().err, 'fit')
    assert len(lines) == 1 and "field 'image size'" in lines[0] and 'more than the limit of 100 ' in lines[0]


def test_caption_answers_the_other_images_when_one_is_a_bomb(tmp_path, model_dir, capsys):
    good = tmp_path / 'good.png'
    fixtures.write_image(good, 48, 40)
    bomb = tmp_path / 'bomb.png'
    fixtures.write_decompression_bomb(bomb)
    assert vlm_main(['caption', '--model', str(model_dir), '--max-new-tokens', '2', str(bomb), str(good)]) == 1
    captured = capsys.readouterr()
    assert [line.split('\t')[0] for line in captured.out.strip().splitlines()] == [str(good)]
    lines = _error_lines(captured.err, 'caption')
    assert len(lines) == 1 and 'bomb.png' in lines[0] and '20000x20000' in lines[0]


@pytest.mark.parametrize('detector', ['fcos', 'maskrcnn'])
def test_a_very_long_thin_image_is_detected_without_a_crash(detector):
    torch.manual_seed(0)
    model = ObjectDetector(num_classes=3, detector=detector, encoder='vlm_vit_tiny_patch16_rope_rms',
                           encoder_kwargs=dict(patch_size=8, img_size=64, depth=1, embed_dim=32, num_heads=2),
                           pyramid_channels=32, min_size=256, max_size=256).eval()
    with torch.no_grad():
        output, = model.detections([torch.rand(3, 20, 10000)])  # resized as it is, it would keep 0.5 rows
    boxes = output['boxes']
    assert boxes.shape[1] == 4 and bool((boxes[:, 0::2] <= 10000).all()) and bool((boxes[:, 1::2] <= 20).all())
    if detector == 'maskrcnn':
        assert output['masks'].shape[1:] == (20, 10000) and output['masks'].dtype == torch.bool
    transform = model.model.transform
    resized, = transform([model._squeezed_for_resize(torch.rand(3, 20, 10000))])[0].image_sizes
    assert min(resized) >= transform.size_divisible and max(resized) <= transform.max_size  # a token per side
    ordinary = torch.rand(3, 40, 60)
    assert model._squeezed_for_resize(ordinary) is ordinary


@pytest.mark.parametrize('damage, expected', [
    ('truncate_weights', 'cannot load the model'),
    ('garble_weights', 'cannot load the model'),
    ('remove_weights', 'no model.safetensors'),
    ('bad_config', 'config.json: not a readable JSON file'),
    ('bad_processor_config', 'processor_config.json: not a readable JSON file'),
])
def test_a_broken_model_folder_is_one_line(tmp_path, model_dir, capsys, damage, expected):
    broken = tmp_path / 'broken'
    broken.mkdir()
    for path in model_dir.iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    weights = broken / 'model.safetensors'
    if damage == 'truncate_weights':
        weights.write_bytes(weights.read_bytes()[:len(weights.read_bytes()) // 2])
    elif damage == 'garble_weights':
        weights.write_bytes(b'\x07' * 64 + weights.read_bytes()[64:])
    elif damage == 'remove_weights':
        weights.unlink()
    elif damage == 'bad_config':
        (broken / 'config.json').write_text('{"model_type": ')
    else:
        (broken / 'processor_config.json').write_text('not json')
    image = tmp_path / 'image.png'
    fixtures.write_image(image, 32, 32)
    assert vlm_main(['caption', '--model', str(broken), str(image)]) == 1
    lines = _error_lines(capsys.readouterr().err, 'caption')
    assert len(lines) == 1 and str(broken) in lines[0] and expected in lines[0], lines


@pytest.mark.parametrize('option, value, expected', [
    ('--image-size', '0', '--image-size must be a positive number of pixels, got 0'),
    ('--image-size', '33', 'image size 33x33 is not a positive multiple of patch_size'),
    ('--batch-size', '0', '--batch-size must be at least 1'),
    ('--max-new-tokens', '-1', '--max-new-tokens must be at least 1'),
])
def test_a_bad_option_value_is_one_line(tmp_path, model_dir, capsys, option, value, expected):
    image = tmp_path / 'image.png'
    fixtures.write_image(image, 32, 32)
    assert vlm_main(['caption', '--model', str(model_dir), option, value, str(image)]) == 1
    lines = _error_lines(capsys.readouterr().err, 'caption')
    assert len(lines) == 1 and expected in lines[0], lines


def test_export_refuses_a_classification_checkpoint_and_a_non_empty_folder(tmp_path, imagenet, capsys):
    config = classification_config(tmp_path, imagenet)
    assert vlm_main(['fit', '--config', str(config), '--trainer.max_epochs', '1']) == 0
    last = tmp_path / 'runs' / 'cls' / 'version_0' / 'checkpoints' / 'last.ckpt'
    out = tmp_path / 'export'
    capsys.readouterr()
    assert vlm_main(['export', '--ckpt', str(last), '--out', str(out)]) == 1
    lines = _error_lines(capsys.readouterr().err, 'export')
    assert len(lines) == 1 and 'vlm.tasks.ImageClassifier' in lines[0] and 'nothing to export' in lines[0]
    out.mkdir()
    (out / 'notes.txt').write_text('mine')
    assert vlm_main(['export', '--ckpt', str(last), '--out', str(out), '--overwrite']) == 1  # still not a VLM
    assert (out / 'notes.txt').read_text() == 'mine'  # a failed export leaves the folder as it was
    assert vlm_main(['export', '--ckpt', str(last), '--out', str(out)]) == 1
    lines = _error_lines(capsys.readouterr().err, 'export')
    assert 'exists and is not empty' in lines[-1] and '--overwrite' in lines[-1]


@pytest.mark.parametrize('change, expected', [
    (dict(encoder_kwargs={'patch_size': 8, 'img_size': 32, 'depth': 2, 'embed_dim': 64, 'num_head': 2}),
     'num_head'),
    (dict(encoder='vlm_vit_no_such_encoder'), 'vlm_vit_no_such_encoder'),
])
def test_a_bad_encoder_option_is_one_line(tmp_path, imagenet, capsys, change, expected):
    config = classification_config(tmp_path, imagenet, **change)
    assert vlm_main(['fit', '--config', str(config)]) == 1
    lines = _error_lines(capsys.readouterr().err, 'fit')
    assert len(lines) == 1 and expected in lines[0], lines


class _RunsCode:
    """Unpickling it would create `marker`: what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checkpoint_holding_code_is_refused_on_every_load_path(tmp_path, imagenet, capsys):
    marker = tmp_path / 'code_ran'
    evil = tmp_path / 'evil.ckpt'
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'payload': _RunsCode(marker)}, evil, pickle_protocol=2)
    config = classification_config(tmp_path, imagenet)
    commands = [
        (['validate', '--config', str(config), '--ckpt_path', str(evil)], 'validate'),
        (['fit', '--config', str(config), '--ckpt_path', str(evil)], 'fit'),
        (['fit', '--config', str(config), '--model.init_args.encoder_weights', str(evil)], 'fit'),
        (['export', '--ckpt', str(evil), '--out', str(tmp_path / 'out')], 'export'),
    ]
    for argv, command in commands:
        assert vlm_main(argv) == 1
        lines = _error_lines(capsys.readouterr().err, command)
        assert len(lines) == 1 and str(evil) in lines[0] and 'refused' in lines[0], (argv, lines)
    from vlm import load_weights
    from vlm.tasks import ImageClassifier

    for load in (lambda: ImageClassifier.load_from_checkpoint(evil), lambda: load_weights(torch.nn.Linear(1, 1), evil)):
        with pytest.raises(DataError, match='refused'):
            load()
    assert not marker.exists()
    assert pickle.loads(pickle.dumps(_RunsCode(marker))) is None and marker.exists()  # the payload is real


def test_evaluate_coco_refuses_ground_truth_the_datasets_refuse(tmp_path, capsys):
    fixtures.coco_2017(tmp_path)
    gt = tmp_path / 'annotations' / 'instances_val2017.json'
    ground_truth = json.loads(gt.read_text())
    ground_truth['annotations'][0]['bbox'][2] = -5.0
    gt.write_text(json.dumps(ground_truth))
    predictions = tmp_path / 'results.json'
    first = ground_truth['annotations'][0]
    predictions.write_text(json.dumps([{'image_id': first['image_id'], 'category_id': first['category_id'],
                                        'bbox': [1.0, 1.0, 5.0, 5.0], 'score': 0.9}]))
    assert vlm_main(['evaluate-coco', '--gt', str(gt), '--predictions', str(predictions)]) == 1
    lines = _error_lines(capsys.readouterr().err, 'evaluate-coco')
    assert len(lines) == 1 and "annotations[0]: 'bbox'" in lines[0] and 'negative size' in lines[0], lines


def test_lightning_commands_print_no_tips_or_known_deprecations(tmp_path, imagenet):
    config = classification_config(tmp_path, imagenet)
    result = subprocess.run([sys.executable, '-m', 'vlm.cli', 'fit', '--config', str(config),
                             '--trainer.max_epochs', '1'], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    for noise in ('litlogger', 'litmodels', 'Tip:', 'LightningCLI', 'LeafSpec', 'is deprecated'):
        assert noise not in output, (noise, output[-3000:])


@pytest.mark.parametrize('argv', [['--help'], ['data', 'shapes', '--help'], ['evaluate-coco', '--help']])
def test_help_answers_without_importing_torch(argv):
    code = ('import sys; sys.argv = ["vlm", *sys.argv[1:]]; import vlm_launcher\n'
            'try:\n    vlm_launcher.main()\nexcept SystemExit:\n    pass\n'
            'print("TORCH" if "torch" in sys.modules else "NO-TORCH")')
    result = subprocess.run([sys.executable, '-c', code, *argv], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == 'NO-TORCH' and 'usage' in result.stdout
