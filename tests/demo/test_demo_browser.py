"""`vlm demo` in a real browser: headless Debian Chromium driven by Playwright uploads a bad file (a message in the
page), then a shapes image, waits for its caption and drawn detections, asks a question and waits for the answer
(the one the predictor gives), and saves a screenshot. `.ci/run` installs chromium (README, tests)."""
import numpy as np
from PIL import Image

from tests.demo.browser import drive, running_demo
from tests.demo.models import demo_models
from vlm.language.inference import VisionLanguagePredictor


def test_the_demo_answers_in_a_real_browser(tmp_path):
    files = demo_models(tmp_path / 'models')
    image = tmp_path / 'shape.png'
    array = np.full((64, 64, 3), 90, np.uint8)
    array[16:40, 20:44] = (220, 40, 40)
    Image.fromarray(array).save(image)
    bad = tmp_path / 'notes.png'
    bad.write_text('not an image')
    question = 'what color is the square?'
    arguments = ['--model', str(files['model']), '--detector', str(files['detector']), '--segmenter',
                 str(files['segmenter']), '--score-threshold', '0', '--max-new-tokens', '8']
    with running_demo(arguments) as url:
        shown = drive(url, image, question, tmp_path / 'demo.png', bad_file=bad)
    predictor = VisionLanguagePredictor.from_pretrained(files['model'])
    assert 'Cannot use notes.png' in shown['bad_status']
    assert shown['status'] == 'shape.png: 64 x 64 px'
    assert shown['caption'] == predictor.caption([str(image)])[0]
    expected = predictor.reply([[{'role': 'user', 'content': '<image>\n' + question}]], [[str(image)]],
                               max_new_tokens=8)[0]
    assert shown['answer'] == expected
    assert (tmp_path / 'demo.png').stat().st_size > 10_000
