"""The demo's handlers without a browser: an upload gets its caption, detections and label map; chat streams the
answers batch generation gives; bad uploads and wrong checkpoints get a message, never an exception."""
import numpy as np
import pytest
from PIL import Image

from tests.demo.models import CLASSES, demo_models
from vlm.demo.app import DemoApp
from vlm.demo.vision import DemoDetector, DemoSegmenter
from vlm.errors import DataError
from vlm.language.inference import VisionLanguagePredictor


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    return demo_models(tmp_path_factory.mktemp('demo'))


@pytest.fixture(scope='module')
def app(files):
    return DemoApp(VisionLanguagePredictor.from_pretrained(files['model']), DemoDetector(files['detector'], 0.0),
                   DemoSegmenter(files['segmenter']), max_new_tokens=8, max_image_pixels=200 * 200)


@pytest.fixture
def picture(tmp_path):
    array = np.zeros((48, 64, 3), np.uint8)
    array[10:30, 12:40] = (220, 40, 40)
    Image.fromarray(array).save(tmp_path / 'shape.png')
    return tmp_path / 'shape.png'


def test_an_upload_is_captioned_detected_segmented_and_can_be_chatted_about(app, picture):
    result, session = app.upload(str(picture), None)
    assert result.status == 'shape.png: 64 x 48 px' and result.image.shape == (6 * 48, 6 * 64, 3)  # shown 6x
    assert np.array_equal(result.image[::6, ::6], np.asarray(Image.open(picture)))
    assert result.caption == app.predictor.caption([str(picture)], max_new_tokens=32)[0]
    assert result.detections.shape == result.image.shape and not np.array_equal(result.detections, result.image)
    listed = result.detection_list.split('; ')[0].removeprefix('detections: ').split(' and ')[0].split(', ')
    assert 0 < len(listed) <= 10 and all(item.split()[0] in CLASSES[1:] for item in listed)
    assert result.segmentation.shape == result.image.shape and 'label map:' in result.detection_list
    updates = list(app.chat('what color is the square?', [], session))
    history, status, session = updates[-1]
    expected = app.predictor.reply([[{'role': 'user', 'content': '<image>\nwhat color is the square?'}]],
                                   [[str(picture)]], max_new_tokens=8)[0]
    assert history == [{'role': 'user', 'content': 'what color is the square?'},
                       {'role': 'assistant', 'content': expected}] and status == ''
    # streamed: every update shows a beginning of the answer (word by word streaming: tests/language)
    assert all(expected.startswith(update[0][-1]['content']) for update in updates)
    again, _ = app.upload(str(picture), session)
    assert again.history == [] and session.messages == [] and len(session.pending) == 1


@pytest.mark.parametrize('kind', ['text', 'truncated', 'huge', 'empty'])
def test_a_bad_upload_is_a_message_in_the_page(app, picture, tmp_path, kind):
    bad = tmp_path / f'{kind}.png'
    if kind == 'text':
        bad.write_text('this is not an image')
    elif kind == 'truncated':
        bad.write_bytes(picture.read_bytes()[:60])
    elif kind == 'huge':
        Image.new('RGB', (400, 400)).save(bad)
    else:
        bad.write_bytes(b'')
    result, session = app.upload(str(bad), None)
    assert result.status.startswith(f'**Cannot use {kind}.png**') and result.image is None and result.caption == ''
    if kind == 'huge':
        assert '160000' in result.status.replace(',', '') or 'pixels' in result.status
    good, _ = app.upload(str(picture), session)  # the page goes on
    assert good.caption


def test_a_checkpoint_of_the_wrong_kind_names_the_file(files):
    with pytest.raises(DataError, match='detector.ckpt.*not a segmentation checkpoint'):
        DemoSegmenter(files['detector'])
    with pytest.raises(DataError, match='segmenter.ckpt.*not a detection checkpoint'):
        DemoDetector(files['segmenter'])


def test_chat_without_a_language_model_says_so(files):
    app = DemoApp(detector=DemoDetector(files['detector']))
    history, status, _ = list(app.chat('hello', [], None))[-1]
    assert history == [] and 'No language model' in status


def test_without_gradio_the_command_says_what_to_install(files, monkeypatch, capsys):
    import importlib.util

    from vlm.cli import demo

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: None if name == 'gradio' else real(name, *a))
    with pytest.raises(SystemExit):
        demo.main(['--model', str(files['model'])])
    assert "pip install -e '.[demo]'" in capsys.readouterr().err
