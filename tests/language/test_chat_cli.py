"""`vlm chat` driven through a pipe and a pseudo-terminal, and `--stream` on `vlm caption` / `vlm ask`: the answers
are the ones batch generation gives for the same dialogue."""
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlm.cli import main as vlm_main
from vlm.language.inference import VisionLanguagePredictor

from .tiny import export_tiny_model

REPO = Path(__file__).resolve().parents[2]
VLM = [sys.executable, '-m', 'vlm.cli']
ANSI = re.compile(r'\x1b\[[0-9;?]*[A-Za-z]')


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory) -> Path:
    return export_tiny_model(tmp_path_factory.mktemp('chat_model'))


@pytest.fixture(scope='module')
def pictures(tmp_path_factory) -> list:
    folder = tmp_path_factory.mktemp('pictures')
    paths = []
    for k, colour in enumerate([(220, 40, 40), (40, 80, 220)]):
        path = folder / f'{k}.png'
        array = np.zeros((40, 48, 3), np.uint8)
        array[8:30, 10 + 10 * k:34] = colour
        Image.fromarray(array).save(path)
        paths.append(path)
    return paths


def _expected(model_dir: Path, dialogue, max_new_tokens: int = 10) -> list:
    """The answers batch generation gives, turn after turn: [(user text, images)] -> answers."""
    predictor = VisionLanguagePredictor.from_pretrained(model_dir)
    messages, images, answers = [], [], []
    for text, new_images in dialogue:
        messages.append({'role': 'user', 'content': '<image>' * len(new_images) + ('\n' if new_images else '') + text})
        images += [str(path) for path in new_images]
        answers.append(predictor.reply([messages], [images], max_new_tokens=max_new_tokens)[0])
        messages.append({'role': 'assistant', 'content': answers[-1]})
    return answers


def test_chat_through_a_pipe_keeps_the_dialogue_and_obeys_its_commands(model_dir, pictures, tmp_path):
    lines = ['what color is the square?', f'/image {pictures[1]}', 'is there a square?',
             f'/image {tmp_path / "missing.png"}', '/bogus', '/reset', 'hello', '/quit', 'never read']
    result = subprocess.run(VLM + ['chat', '--model', str(model_dir), '--max-new-tokens', '10', str(pictures[0])],
                            input='\n'.join(lines) + '\n', capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'Traceback' not in result.stderr
    first = _expected(model_dir, [(lines[0], [pictures[0]]), (lines[2], [pictures[1]])])
    after_reset = _expected(model_dir, [('hello', [])])
    assert result.stdout.splitlines() == first + after_reset
    assert f'image {pictures[1]} will be shown with your next message' in result.stderr
    assert 'missing.png' in result.stderr and "unknown command '/bogus'" in result.stderr
    assert 'the dialogue is reset' in result.stderr and 'dropped' not in result.stderr  # all of it fits


def test_chat_in_a_terminal_prompts_and_streams(model_dir, pictures):
    """A pseudo-terminal: the prompts appear, and the answer is written before the next prompt is read."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(VLM + ['chat', '--model', str(model_dir), '--max-new-tokens', '10', str(pictures[0])],
                               stdin=follower, stdout=follower, stderr=follower, cwd=REPO, close_fds=True,
                               env={**os.environ, 'TERM': 'dumb'})
    os.close(follower)
    output = b''

    def read_until(marker: bytes, timeout: float = 240) -> None:
        nonlocal output
        deadline = time.monotonic() + timeout
        while marker not in output:
            assert time.monotonic() < deadline, output.decode(errors='replace')[-2000:]
            ready, _, _ = select.select([leader], [], [], 1)
            if ready:
                try:
                    output += os.read(leader, 4096)
                except OSError:
                    break

    try:
        read_until(b'you> ')
        os.write(leader, b'what color is the square?\n')
        read_until(b'vlm> ')
        output = output.split(b'vlm> ', 1)[1]
        read_until(b'you> ')
        answer = ANSI.sub('', output.split(b'you> ')[0].decode()).strip()
        os.write(leader, b'/quit\n')
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
        os.close(leader)
    assert answer == _expected(model_dir, [('what color is the square?', [pictures[0]])])[0]


def test_stream_prints_the_same_answers_as_batch_generation(model_dir, pictures, capsys):
    images = [str(path) for path in pictures]
    assert vlm_main(['caption', '--model', str(model_dir), '--max-new-tokens', '6', *images]) == 0
    batched = capsys.readouterr().out
    assert vlm_main(['caption', '--model', str(model_dir), '--max-new-tokens', '6', '--stream', *images]) == 0
    assert capsys.readouterr().out == batched
    question = ['--question', 'is there a square?', '--max-new-tokens', '6']
    assert vlm_main(['ask', '--model', str(model_dir), *question, *images]) == 0
    batched = capsys.readouterr().out
    assert vlm_main(['ask', '--model', str(model_dir), *question, '--stream', *images]) == 0
    assert capsys.readouterr().out == batched
    with pytest.raises(SystemExit):
        vlm_main(['ask', '--model', str(model_dir), '--stream', '--json', *question, *images])
    assert '--stream' in capsys.readouterr().err
