"""What a hostile-input probe of the commands found (issue 29), each case as it was typed: nothing lost, nothing
silently wrong, one line instead of a traceback."""
import json
import subprocess
import sys
from pathlib import Path

import lightning  # noqa: F401  (imported here, its log handler writes to the real stderr, not one test's capture)
import numpy as np
import pytest
import torch
from PIL import Image

from tests.data import fixtures
from tests.language.tiny import export_tiny_model, tiny_model
from tests.tasks.test_cli_classification import _config as classification_config
from vlm.cli import main as vlm_main
from vlm.errors import InputError

REPO = Path(__file__).resolve().parents[1]


def _error_lines(err: str, command: str):
    """The `vlm COMMAND: error: ...` lines of stderr; none of stderr is a traceback."""
    assert 'Traceback' not in err and 'Caught' not in err, err[-2000:]
    return [line for line in err.splitlines() if line.startswith(f'vlm {command}: error: ')]


def _one_line(capsys, command: str, *expected: str) -> str:
    lines = _error_lines(capsys.readouterr().err, command)
    assert len(lines) == 1 and all(text in lines[0] for text in expected), lines
    return lines[0]


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory) -> Path:
    return export_tiny_model(tmp_path_factory.mktemp('model'))


@pytest.fixture
def imagenet(tmp_path):
    fixtures.imagenet(tmp_path / 'imagenet', per_class=4)
    return tmp_path / 'imagenet'


@pytest.fixture
def trained(tmp_path, imagenet):
    """A classification config and the last.ckpt of one epoch of it."""
    config = classification_config(tmp_path, imagenet)
    assert vlm_main(['fit', '--config', str(config), '--trainer.max_epochs', '1']) == 0
    return config, tmp_path / 'runs' / 'cls' / 'version_0' / 'checkpoints' / 'last.ckpt'


# -- data loss ---------------------------------------------------------------------------------------------------

def test_export_never_deletes_the_checkpoint_it_reads(tmp_path, capsys):
    run = tmp_path / 'runs' / 'x'
    run.mkdir(parents=True)
    (run / 'last.ckpt').write_bytes(b'weights')
    (run / 'best-epoch001.ckpt').write_bytes(b'best')
    assert vlm_main(['export', '--ckpt', str(run / 'last.ckpt'), '--out', str(run), '--overwrite']) == 1
    _one_line(capsys, 'export', str(run), 'last.ckpt', 'would delete')
    assert (run / 'last.ckpt').read_bytes() == b'weights' and (run / 'best-epoch001.ckpt').read_bytes() == b'best'
    assert vlm_main(['export', '--ckpt', str(run / 'last.ckpt'), '--out', str(tmp_path / 'runs'),
                     '--overwrite']) == 1  # a folder above it too
    assert (run / 'last.ckpt').is_file()


def test_convert_never_overwrites_its_source_folder(tmp_path, capsys):
    source = tmp_path / 'weights' / 'vit'
    source.mkdir(parents=True)
    (source / 'config.json').write_text('{}')
    assert vlm_main(['convert', f'local-dir:{source}', '--out', str(source), '--overwrite']) == 1
    _one_line(capsys, 'convert', str(source), 'would delete')
    assert (source / 'config.json').read_text() == '{}'


# -- silently wrong ----------------------------------------------------------------------------------------------

def test_every_image_form_gives_the_same_pixel_values(tmp_path):
    """A path, a PIL image, a uint8 tensor and a float tensor in [0, 1] of one image give identical pixel_values;
    an RGBA or 16-bit file gives the same values as a path and as the PIL object opened from it."""
    _, processor = tiny_model()
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    path = tmp_path / 'rgb.png'
    Image.fromarray(rgb).save(path)
    as_uint8 = torch.from_numpy(rgb).permute(2, 0, 1)
    forms = [path, str(path), Image.open(path), as_uint8, as_uint8.float() / 255]
    values = [processor.pixel_values([form]) for form in forms]
    for other in values[1:]:
        torch.testing.assert_close(other, values[0], atol=1e-6, rtol=0)
    rgba = tmp_path / 'rgba.png'
    Image.fromarray(np.dstack([rgb, rng.integers(0, 256, (40, 48), dtype=np.uint8)]), 'RGBA').save(rgba)
    deep = tmp_path / 'deep.png'
    Image.fromarray(rng.integers(0, 65536, (40, 48)).astype(np.uint16)).save(deep)
    for file in (rgba, deep):
        torch.testing.assert_close(processor.pixel_values([Image.open(file)]), processor.pixel_values([file]))


@pytest.mark.parametrize('make, expected', [
    (lambda t: t.float(), r'values in \[0, 1\], got 0..255'),  # 0-255 floats
    (lambda t: (t.float() / 255 - 0.5) / 0.25, r'values in \[0, 1\]'),  # already normalised
    (lambda t: t[:1], r'\(3, H, W\)'),
    (lambda t: t.to(torch.int32), 'uint8'),
])
def test_ambiguous_image_tensors_are_refused(make, expected):
    _, processor = tiny_model()
    image = torch.arange(3 * 16 * 16).reshape(3, 16, 16).remainder(256).to(torch.uint8)
    image[0, 0, 0], image[0, 0, 1] = 0, 255
    with pytest.raises(InputError, match=expected):
        processor.pixel_values([make(image)])


def test_validate_without_weights_refuses(trained, capsys):
    config, last = trained
    empty = config.parent / 'elsewhere.yaml'
    empty.write_text(config.read_text().replace(str(config.parent / 'runs'), str(config.parent / 'nothing')))
    capsys.readouterr()
    assert vlm_main(['validate', '--config', str(empty), '--ckpt_path', 'last']) == 1
    _one_line(capsys, 'validate', '--ckpt_path last', 'no last.ckpt', 'nothing to validate')
    for command in ('validate', 'test', 'predict'):
        assert vlm_main([command, '--config', str(config)]) == 1
        _one_line(capsys, command, 'no weights', '--ckpt_path')
    assert vlm_main(['validate', '--config', str(config), '--ckpt_path', 'untrained']) == 0  # said explicitly
    assert vlm_main(['validate', '--config', str(config), '--ckpt_path', 'last']) == 0


# -- one line instead of a traceback -----------------------------------------------------------------------------

def test_bytes_that_are_not_utf8_are_one_message_and_the_dialogue_goes_on(model_dir, tmp_path):
    image = tmp_path / 'image.png'
    fixtures.write_image(image, 32, 32)
    result = subprocess.run(
        [sys.executable, '-m', 'vlm.cli', 'chat', '--model', str(model_dir), '--max-new-tokens', '3', str(image)],
        input=b'caption \xff\xfe this\nwhat color is it?\n', capture_output=True, cwd=REPO, timeout=300)
    err = result.stderr.decode()
    assert result.returncode == 0 and 'Traceback' not in err, err[-2000:]
    assert 'vlm chat: error: the message is not valid UTF-8 text (byte 0xff at character 8)' in err
    assert len(result.stdout.decode().strip().splitlines()) == 1  # the second line is answered


def test_a_question_that_is_not_utf8_is_one_line(model_dir, capsys):
    assert vlm_main(['ask', '--model', str(model_dir), '--question', 'what\udcff?']) == 1
    _one_line(capsys, 'ask', 'the question is not valid UTF-8 text (byte 0xff')


@pytest.mark.parametrize('damage, expected', [
    (lambda folder: (folder / 'config.json').write_text('[1, 2]'), 'config.json: expected a JSON object, got a list'),
    (lambda folder: (folder / 'processor_config.json').write_text('{}'), "field 'image_processor'"),
    (lambda folder: [(folder / name).unlink() for name in ('tokenizer.json', 'tokenizer_config.json')
                     if (folder / name).exists()], 'no tokenizer files'),
    (lambda folder: (folder / 'config.json').write_text('{"model_type": "llama"}'), 'not a vlm vision-language model'),
])
def test_a_model_folder_of_the_wrong_shape_is_one_line(tmp_path, model_dir, capsys, damage, expected):
    broken = tmp_path / 'broken'
    broken.mkdir()
    for path in model_dir.iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    damage(broken)
    image = tmp_path / 'image.png'
    fixtures.write_image(image, 32, 32)
    assert vlm_main(['caption', '--model', str(broken), str(image)]) == 1
    _one_line(capsys, 'caption', str(broken), expected)


def test_a_string_in_the_coco_images_list_is_one_line(tmp_path, capsys):
    """`vlm fit` of the shipped detection config (two loader workers) on a COCO tree whose images list holds a
    string: one line naming the file and the entry."""
    root = tmp_path / 'coco'
    fixtures.coco_2017(root, 'train')
    fixtures.coco_2017(root, 'val')
    path = root / 'annotations' / 'instances_train2017.json'
    data = json.loads(path.read_text())
    data['images'].insert(1, 'oops')
    path.write_text(json.dumps(data))
    config = str(REPO / 'configs' / 'shapes' / 'detection.yaml')
    assert vlm_main(['fit', '--config', config, '--data.root', str(root), '--data.shapes_root', 'null',
                     '--data.train_images', 'train2017', '--data.val_images', 'val2017',
                     '--data.train_annotations', 'annotations/instances_train2017.json',
                     '--data.val_annotations', 'annotations/instances_val2017.json',
                     '--trainer.logger', 'false', '--trainer.max_steps', '1']) == 1
    _one_line(capsys, 'fit', 'instances_train2017.json', 'images[1]: expected a JSON object, got str')


def test_a_shapes_root_holding_other_files_is_one_line(tmp_path):
    from vlm.data.datamodule_base import ensure_shapes
    from vlm.errors import DataError

    folder = tmp_path / 'mine'
    folder.mkdir()
    (folder / 'notes.txt').write_text('keep me')
    with pytest.raises(DataError, match='holds other files and no shapes dataset'):
        ensure_shapes(folder)
    assert (folder / 'notes.txt').read_text() == 'keep me'


def test_ckpt_path_naming_a_folder_text_or_json_is_one_line(trained, capsys):
    config, last = trained
    folder = config.parent / 'a_folder'
    folder.mkdir()
    text, document = config.parent / 'notes.ckpt', config.parent / 'config.ckpt'
    text.write_text('hello, these are my notes')
    document.write_text('{"model": 1}')
    capsys.readouterr()
    for given, expected in ((folder, 'is a folder, not a checkpoint file'),
                            (text, 'not a torch checkpoint: it is a text file'),
                            (document, 'not a torch checkpoint: it is a JSON file')):
        assert vlm_main(['validate', '--config', str(config), '--ckpt_path', str(given)]) == 1
        _one_line(capsys, 'validate', str(given), expected)
        assert vlm_main(['export', '--ckpt', str(given), '--out', str(config.parent / 'out')]) == 1
        _one_line(capsys, 'export', str(given), expected)


def test_a_checkpoint_of_another_task_says_so(trained, capsys):
    config, last = trained
    capsys.readouterr()
    assert vlm_main(['validate', '--config', str(REPO / 'configs' / 'shapes' / 'detection.yaml'),
                     '--ckpt_path', str(last)]) == 1
    _one_line(capsys, 'validate', 'a checkpoint of vlm.tasks.ImageClassifier', 'the config trains vlm.tasks')


@pytest.mark.parametrize('options, expected', [
    (['--sample', '--temperature', '0'], '--temperature must be > 0 when sampling'),
    (['--sample', '--top-p', '0'], '--top-p must be in (0, 1]'),
    (['--num-beams', '0'], '--num-beams must be at least 1'),
    (['--device', 'cuda:7'], 'no such CUDA device'),
    (['--device', 'toaster'], "is not a device"),
])
def test_a_generation_option_transformers_would_refuse_is_one_line(tmp_path, model_dir, capsys, options, expected):
    image = tmp_path / 'image.png'
    fixtures.write_image(image, 32, 32)
    for command in (['caption'], ['ask', '--question', 'what is it?'], ['chat']):
        assert vlm_main([*command, '--model', str(model_dir), *options, str(image)]) == 1
        _one_line(capsys, command[0], expected)


@pytest.mark.parametrize('content, expected', [('[1, 2]', 'not a timm model config'), ('{"architecture": ', 'not valid JSON')])
def test_an_encoder_folder_whose_config_is_not_a_model_config_is_one_line(tmp_path, imagenet, capsys, content,
                                                                           expected):
    folder = tmp_path / 'encoder'
    folder.mkdir()
    (folder / 'config.json').write_text(content)
    config = classification_config(tmp_path, imagenet, encoder=f'local-dir:{folder}')
    capsys.readouterr()
    assert vlm_main(['fit', '--config', str(config)]) == 1
    _one_line(capsys, 'fit', str(folder / 'config.json'), expected)
