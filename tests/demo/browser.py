"""Drive `vlm demo` in headless Chromium (Debian's `chromium` package, through Playwright): upload an image, wait for
its caption and drawn detections, ask a question, wait for the answer, save a screenshot.

The README's screenshot is made with it, against the measured shapes models:
    python -m tests.demo.browser --model models/shapes_conversations --detector CKPT --score-threshold 0.5 \
        --image IMAGE --question "how many circles are there?" --screenshot docs/demo.png
"""
from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional

CHROMIUM = Path('/usr/bin/chromium')
# Chromium on a machine with no outside network: no background requests, no GPU, no first-run or sync
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic']
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


@contextmanager
def running_demo(arguments: List[str], timeout: float = 240) -> Iterator[str]:
    """`vlm demo ARGUMENTS` on a free localhost port; yields its URL once it answers, stops it afterwards."""
    port = free_port()
    process = subprocess.Popen([sys.executable, '-m', 'vlm.cli', 'demo', *arguments, '--port', str(port)],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f'http://127.0.0.1:{port}/'
    deadline = time.monotonic() + timeout
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f'vlm demo exited with {process.returncode}:\n{process.stdout.read()[-3000:]}')
            try:
                urllib.request.urlopen(url, timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f'vlm demo did not answer on {url} within {timeout:.0f} s') from None
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def drive(url: str, image: Path, question: str, screenshot: Optional[Path] = None, bad_file: Optional[Path] = None,
          timeout_ms: int = 120_000, detections: bool = True) -> Dict[str, str]:
    """Upload `bad_file` (if given: its message must appear) then `image`, wait for the caption and (with a
    detector: `detections`) the drawn detections, ask `question` and wait for the answer. Returns what the page
    showed: status, caption, answer, bad_status."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        raise FileNotFoundError(f'{CHROMIUM} not found: install Debian\'s chromium (apt-get install -y chromium)')
    shown: Dict[str, str] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={'width': 1280, 'height': 1100})
            page.set_default_timeout(timeout_ms)
            page.goto(url)
            upload = page.locator('#upload input[type=file]')
            if bad_file is not None:
                upload.set_input_files(str(bad_file))
                page.wait_for_function("document.querySelector('#status').innerText.includes('Cannot use')")
                shown['bad_status'] = page.locator('#status').inner_text()
                page.locator('#upload button[aria-label="Clear"]').first.click()
                page.wait_for_function("document.querySelector('#status').innerText.includes('Upload an image')")
            upload.set_input_files(str(image))
            page.wait_for_function("document.querySelector('#caption textarea').value.length > 0")
            if detections:
                page.wait_for_function("!!document.querySelector('#detections img')")
            shown['status'] = page.locator('#status').inner_text()
            shown['caption'] = page.locator('#caption textarea').input_value()
            box = page.locator('#question textarea')
            box.fill(question)
            box.press('Enter')
            page.wait_for_function(
                "(() => { const m = document.querySelectorAll('#chat .message-row'); "
                "return m.length >= 2 && m[m.length - 1].innerText.trim().length > 0; })()")
            page.wait_for_function("document.querySelector('#question textarea').value === ''")
            time.sleep(1.0)  # the stream's last update
            shown['answer'] = page.locator('#chat .message-row').last.inner_text().strip()
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return shown


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', required=True)
    parser.add_argument('--detector')
    parser.add_argument('--segmenter')
    parser.add_argument('--score-threshold')
    parser.add_argument('--image', required=True, type=Path)
    parser.add_argument('--question', required=True)
    parser.add_argument('--screenshot', required=True, type=Path)
    args = parser.parse_args(argv)
    arguments = ['--model', args.model]
    arguments += ['--detector', args.detector] if args.detector else []
    arguments += ['--segmenter', args.segmenter] if args.segmenter else []
    arguments += ['--score-threshold', args.score_threshold] if args.score_threshold else []
    with running_demo(arguments) as url:
        shown = drive(url, args.image, args.question, args.screenshot, detections=bool(args.detector))
        for key, value in shown.items():
            print(f'{key}: {value}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
