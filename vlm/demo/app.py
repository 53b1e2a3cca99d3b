"""`vlm demo`: a local web page (Gradio) for an exported VLM and, optionally, a detection and a segmentation
checkpoint. Upload an image: its caption, its detections and its label map are shown; then chat about it.

`DemoApp` holds the models and the page's handlers as plain methods (tested without a browser); `build_page` lays
them out in `gradio.Blocks`. A bad upload (not an image, truncated, corrupt, more pixels than allowed) is answered
by a message in the page; the server goes on.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch

from vlm.errors import DataError, InputError
from vlm.io.images import load_image_tensor
from vlm.language.chat_session import ChatSession
from vlm.language.inference import VisionLanguagePredictor

from .vision import DemoDetector, DemoSegmenter, enlarged

DISPLAY_SIZE = 384  # a smaller image is drawn enlarged to about this many pixels (whole multiples)
MAX_LISTED = 10  # detections named under the image (all are drawn)
History = List[Dict[str, str]]  # Gradio's chat messages: {'role': 'user' | 'assistant', 'content': str}


def _picture(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) uint8 -> (H, W, 3) uint8, as Gradio shows it."""
    return image.permute(1, 2, 0).contiguous().numpy()


@dataclass
class UploadResult:
    """What the page shows after an upload (None: leave that output empty)."""

    status: str
    image: Optional[np.ndarray] = None
    caption: str = ''
    detections: Optional[np.ndarray] = None
    detection_list: str = ''
    segmentation: Optional[np.ndarray] = None
    history: History = field(default_factory=list)


class DemoApp:
    """The demo's models and handlers. predictor: a `VisionLanguagePredictor` (captions and chat) or None;
    detector / segmenter: `DemoDetector` / `DemoSegmenter` or None; max_image_pixels: larger uploads are refused
    (default: vlm's limit, `vlm.io.images`)."""

    def __init__(self, predictor: Optional[VisionLanguagePredictor] = None, detector: Optional[DemoDetector] = None,
                 segmenter: Optional[DemoSegmenter] = None, max_new_tokens: int = 64,
                 max_image_pixels: Optional[int] = None) -> None:
        if predictor is None and detector is None and segmenter is None:
            raise InputError('the demo needs a model: --model, --detector and / or --segmenter')
        self.predictor, self.detector, self.segmenter = predictor, detector, segmenter
        self.max_new_tokens = max_new_tokens
        self.max_image_pixels = max_image_pixels

    def new_session(self) -> Optional[ChatSession]:
        return ChatSession(self.predictor, self.max_new_tokens) if self.predictor is not None else None

    # -- handlers ------------------------------------------------------------------------------------------------
    def upload(self, path: Optional[str], session: Optional[ChatSession]) -> Tuple[UploadResult, Optional[ChatSession]]:
        """An uploaded file -> caption, detections, label map, and a new dialogue about it."""
        session = session or self.new_session()
        if not path:
            return UploadResult('Upload an image to start.'), session
        name = Path(path).name
        try:
            image = load_image_tensor(path, self.max_image_pixels).as_subclass(torch.Tensor)  # (3, H, W) uint8
        except DataError as error:
            return UploadResult(f'**Cannot use {name}**: {error.reason or error}'), session
        scale = max(1, DISPLAY_SIZE // max(image.shape[1:]))
        result = UploadResult(f'{name}: {image.shape[2]} x {image.shape[1]} px', image=_picture(enlarged(image, scale)))
        if self.predictor is not None:
            pixels = self.predictor.processor.load_image(image)  # (3, S, S), once for caption and chat
            result.caption = self.predictor.caption([pixels])[0]
            session.reset()
            session.add_image(pixels)
        if self.detector is not None:
            drawn, detections = self.detector(image, scale)
            result.detections = _picture(drawn)
            shown = [f'{d.label} {d.score:.2f}' for d in detections[:MAX_LISTED]]
            more = f' and {len(detections) - MAX_LISTED} more' if len(detections) > MAX_LISTED else ''
            result.detection_list = ('detections: ' + ', '.join(shown) + more) if shown else 'no detection'
        if self.segmenter is not None:
            overlay, found = self.segmenter(image, scale)
            result.segmentation = _picture(overlay)
            result.detection_list += ('; ' if result.detection_list else '') + 'label map: ' + (
                ', '.join(found) or 'background only')
        return result, session

    def chat(self, text: str, history: History, session: Optional[ChatSession]
             ) -> Iterator[Tuple[History, str, Optional[ChatSession]]]:
        """A question -> (chat history with the answer so far, status, session), streamed piece by piece."""
        session = session or self.new_session()
        if session is None:
            yield history, 'No language model loaded (start the demo with --model).', session
            return
        history = list(history or []) + [{'role': 'user', 'content': text}, {'role': 'assistant', 'content': ''}]
        try:
            for piece in session.send(text):
                history[-1] = {'role': 'assistant', 'content': history[-1]['content'] + piece}
                yield history, '', session
        except (InputError, DataError) as error:
            yield history[:-2], f'**Cannot answer**: {error}', session
            return
        history[-1] = {'role': 'assistant', 'content': history[-1]['content'].strip()}
        yield history, session.notice() or '', session


def build_page(app: DemoApp):
    """The page: an upload box, the image with its caption, detections and label map, and a chat."""
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')  # no usage reports, no version check
    try:
        import gradio as gr
    except ImportError:
        raise InputError("vlm demo needs gradio: pip install -e '.[demo]'") from None

    with gr.Blocks(title='vlm demo', analytics_enabled=False) as page:
        gr.Markdown('# vlm demo\nUpload an image: its caption, detections and label map appear; then ask about it.')
        with gr.Row():
            upload = gr.File(label='Image', type='filepath', elem_id='upload')
            status = gr.Markdown('Upload an image to start.', elem_id='status')
        with gr.Row():
            image = gr.Image(label='Image', type='numpy', interactive=False, elem_id='image', height=300)
            detections = gr.Image(label='Detections', type='numpy', interactive=False, elem_id='detections', height=300,
                                  visible=app.detector is not None)
            segmentation = gr.Image(label='Label map', type='numpy', interactive=False, elem_id='segmentation', height=300,
                                    visible=app.segmenter is not None)
        caption = gr.Textbox(label='Caption', interactive=False, elem_id='caption', visible=app.predictor is not None)
        found = gr.Markdown(elem_id='found')
        chatbot = gr.Chatbot(label='Chat about the image', elem_id='chat', visible=app.predictor is not None)
        question = gr.Textbox(label='Question', placeholder='what color is the circle?', elem_id='question',
                              visible=app.predictor is not None)
        session = gr.State(None)

        def on_upload(path, state):
            result, state = app.upload(path, state)
            return (result.status, result.image, result.caption, result.detections, result.detection_list,
                    result.segmentation, result.history, state)

        def on_question(text, history, state):
            for history, message, state in app.chat(text, history, state):
                yield history, '', message, state

        upload.change(on_upload, [upload, session],
                      [status, image, caption, detections, found, segmentation, chatbot, session])
        question.submit(on_question, [question, chatbot, session], [chatbot, question, status, session])
    return page


def launch(app: DemoApp, host: str = '127.0.0.1', port: int = 7860, max_file_size: str = '50mb') -> None:
    """Serve the page on host:port until interrupted: local only, no share link, no analytics."""
    page = build_page(app)
    page.queue().launch(server_name=host, server_port=port, share=False, max_file_size=max_file_size,
                        show_error=True, inbrowser=False)


__all__ = ['DemoApp', 'UploadResult', 'build_page', 'launch']

