"""`ChatSession`: a multi-turn dialogue with a saved vision-language model, as `vlm chat` and `vlm demo` hold it.

    session = ChatSession(VisionLanguagePredictor.from_pretrained('models/shapes_conversations'))
    session.add_image('a.png')                 # bound to the next message's <image>
    for piece in session.send('what shape is the red object?'):
        print(piece, end='', flush=True)       # streamed as it is generated
    session.send_and_wait('and what color is the circle?')

The history (messages and the images their `<image>` placeholders show) is kept within the decoder's context:
before each answer the oldest turns are dropped until the prompt plus `max_new_tokens` fit, and
`session.dropped_turns` says how many were (`notice()` says it in words).
"""
from __future__ import annotations

from typing import Any, Iterator, List, Optional

from vlm.errors import InputError

from .chat import Message, check_text
from .inference import VisionLanguagePredictor
from .processor import ImageInput, PromptTooLongError
from .tokenizer import IMAGE_TOKEN


class ChatSession:
    """History + pending images of one dialogue. generation: transformers' options (`do_sample`, `temperature`,
    ...) for every answer; system: an optional system message that is never dropped."""

    def __init__(self, predictor: VisionLanguagePredictor, max_new_tokens: int = 128, system: Optional[str] = None,
                 **generation: Any) -> None:
        if max_new_tokens < 1:
            raise InputError(f'max_new_tokens must be at least 1, got {max_new_tokens}')
        self.predictor = predictor
        self.max_new_tokens = max_new_tokens
        self.system = system
        self.generation = generation
        self.reset()

    def reset(self) -> None:
        """Forget the dialogue and any image not yet sent."""
        self.messages: List[Message] = [{'role': 'system', 'content': self.system}] if self.system else []
        self.images: List[Any] = []  # (3, S, S) images in [0, 1], in the order of the placeholders in `messages`
        self.pending: List[Any] = []  # added by `add_image`, bound to the next message
        self.dropped_turns = 0

    def add_image(self, image: ImageInput) -> None:
        """Read an image now (a bad file raises `DataError` here, not at the next answer); the next message shows
        it, after any other pending image."""
        self.pending.append(self.predictor.processor.load_image(image))  # (3, S, S) in [0, 1]

    def _prompt_length(self, messages: List[Message], images: int) -> int:
        ids, _ = self.predictor.processor.encode_conversation(messages, images, add_generation_prompt=True)
        return len(ids)

    def _fit(self) -> None:
        """Drop the oldest user / assistant turns (and the images they show) until the prompt and
        `max_new_tokens` fit the context; a last message that does not fit alone raises `PromptTooLongError`."""
        context = self.predictor.processor.max_length
        start = 1 if self.system else 0
        self.dropped_turns = 0
        while True:
            try:
                length = self._prompt_length(self.messages, len(self.images))
            except PromptTooLongError:
                length = context + 1
            if length + self.max_new_tokens <= context:
                return
            turn_end = next((k for k in range(start + 1, len(self.messages))
                             if self.messages[k]['role'] == 'user'), None)
            if turn_end is None:  # only the new message is left
                raise PromptTooLongError(
                    f'the message takes {length} of the {context} context tokens, leaving no room for '
                    f'{self.max_new_tokens} new tokens; send a shorter one or fewer images')
            dropped = self.messages[start:turn_end]
            shown = sum(message['content'].count(IMAGE_TOKEN) for message in dropped)
            del self.messages[start:turn_end]
            del self.images[:shown]
            self.dropped_turns += 1

    def send(self, text: str) -> Iterator[str]:
        """Add a user message (the pending images first, as `<image>` placeholders) and stream the answer piece by
        piece; the whole answer joins the history when the stream ends. A message that cannot be answered leaves
        the history as it was."""
        if not isinstance(text, str) or not (text.strip() or self.pending):
            raise InputError('empty message')
        check_text(text, 'the message')
        saved = (list(self.messages), list(self.images), list(self.pending))
        placeholders = IMAGE_TOKEN * len(self.pending) + ('\n' if self.pending else '')
        self.messages.append({'role': 'user', 'content': placeholders + text.strip()})
        self.images += self.pending
        self.pending = []
        pieces: List[str] = []
        try:
            self._fit()
            for piece in self.predictor.stream(self.messages, self.images, max_new_tokens=self.max_new_tokens,
                                               **self.generation):
                pieces.append(piece)
                yield piece
        except BaseException:
            self.messages, self.images, self.pending = saved
            raise
        self.messages.append({'role': 'assistant', 'content': ''.join(pieces).strip()})

    def send_and_wait(self, text: str) -> str:
        """`send`, the answer whole."""
        return ''.join(self.send(text)).strip()

    def notice(self) -> Optional[str]:
        """What the last answer's trimming did, in words (None when nothing was dropped)."""
        if not self.dropped_turns:
            return None
        turns = 'turn' if self.dropped_turns == 1 else 'turns'
        return (f'dropped the {self.dropped_turns} oldest {turns} to fit the context of '
                f'{self.predictor.processor.max_length} tokens')
