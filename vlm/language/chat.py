"""Conversations -> text, through the tokenizer's chat template: one function renders training sequences and
inference prompts alike, so the two cannot drift.

A conversation is a list of messages `{'role': 'system' | 'user' | 'assistant', 'content': str}`; an image is
placed where its `<image>` placeholder is in a user message. `render_turns` splits the rendered text into
pieces, each marked as learned (an assistant message and the end of its turn) or not (everything else), so the
loss masks exactly what the template wrote around the assistant's words.

A tokenizer with its own template (a pretrained decoder's, e.g. SmolLM2's ChatML) uses it; one without (the BPE
vlm trains for the shapes data) gets `DEFAULT_CHAT_TEMPLATE`, vlm's plain format:

    <s>{user}{' ' + assistant + '</s>'}{user}{' ' + assistant + '</s>'}...

so a captioning turn reads `<s><image>Caption: a red circle</s>` and a VQA turn
`<s><image>Question: what color is the circle? Answer: red</s>`.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

from transformers import PreTrainedTokenizerBase

from vlm.errors import InputError

DEFAULT_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{{ ' ' + message['content'] + eos_token }}"
    "{% else %}{{ message['content'] }}{% endif %}"
    "{% endfor %}"
)
ROLES = ('system', 'user', 'assistant')
Message = Dict[str, str]
Piece = Tuple[str, bool]  # (text, learned)


def chat_template(tokenizer: PreTrainedTokenizerBase) -> str:
    """The tokenizer's own chat template, else vlm's default."""
    return tokenizer.chat_template or DEFAULT_CHAT_TEMPLATE


def check_messages(messages: Sequence[Message]) -> None:
    """Refuse a conversation that is empty, has a role other than system / user / assistant, or content that is not
    a string."""
    if not messages:
        raise InputError('a conversation needs at least one message')
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get('role') not in ROLES:
            raise InputError(f'message {index}: role must be one of {ROLES}, got {message!r}'[:200])
        if not isinstance(message.get('content'), str):
            raise InputError(f"message {index} ({message['role']}): content must be a string")
        check_text(message['content'], f"message {index} ({message['role']})")


def check_text(text: str, what: str = 'the text') -> None:
    """Refuse text holding characters no tokenizer can encode: bytes that were not UTF-8 (read from a terminal,
    a pipe or the command line, they arrive as lone surrogates)."""
    try:
        text.encode('utf-8')
    except UnicodeEncodeError as error:
        bad = text[error.start]
        shown = f'byte 0x{ord(bad) - 0xDC00:02x}' if 0xDC80 <= ord(bad) <= 0xDCFF else f'character {bad!r}'
        raise InputError(f'{what} is not valid UTF-8 text ({shown} at character {error.start})') from None


def render(tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message], add_generation_prompt: bool) -> str:
    """The conversation as the template writes it (text, not ids)."""
    return tokenizer.apply_chat_template(list(messages), chat_template=chat_template(tokenizer), tokenize=False,
                                         add_generation_prompt=add_generation_prompt)


def render_turns(tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message],
                 add_generation_prompt: bool = False) -> List[Piece]:
    """The rendered conversation as consecutive pieces (text, learned): each assistant message, with what its
    template writes after it (end of turn), is learned; what comes before it, up to and including the generation
    prompt (e.g. '<|im_start|>assistant\\n'), is not. The pieces join to `render(...)` exactly.

    Needs a template that renders turn by turn (each prefix of the conversation renders to a prefix of the whole),
    as ChatML, Llama's and vlm's default do; another raises `InputError`.
    """
    check_messages(messages)
    pieces: List[Piece] = []
    done = ''
    for end, message in enumerate(messages, 1):
        if message['role'] != 'assistant':
            continue
        before = render(tokenizer, messages[:end - 1], add_generation_prompt=True)
        through = render(tokenizer, messages[:end], add_generation_prompt=False)
        if not (before.startswith(done) and through.startswith(before)):
            raise InputError('the chat template does not render a conversation turn by turn, so the assistant\'s '
                             'tokens cannot be told apart; give a tokenizer with a ChatML / Llama-style template')
        pieces += [(before[len(done):], False), (through[len(before):], True)]
        done = through
    whole = render(tokenizer, messages, add_generation_prompt=add_generation_prompt)
    if not whole.startswith(done):
        raise InputError('the chat template does not render a conversation turn by turn')
    if whole[len(done):]:
        pieces.append((whole[len(done):], False))
    return [(text, learned) for text, learned in pieces if text]
