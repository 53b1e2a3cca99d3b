"""What vlm asks the model, for training and inference alike: the message contents of captioning, VQA and
text-only prompts (the chat template, `vlm.language.chat`, turns them into the decoder's format).

    captioning:  user '<image>Caption:'                          -> assistant '{caption}'
    VQA:         user '<image>Question: {question} Answer:'       -> assistant '{answer}'
    several questions about one image: one conversation, the image in the first user turn
    text only:   user '{prompt}'                                  -> the decoder answers from its own knowledge

The plain strings (`caption_prompt`, `vqa_prompt`, `target_text`) are the same texts for the processor's raw
path (`processor(prompts, images, targets)`): `<s>{prompt}` then `' {target}</s>'`, which is exactly what the
default chat template renders.
"""
from __future__ import annotations

from typing import Iterator, List, Optional, Sequence, Tuple

from vlm.errors import InputError

from .chat import Message, check_text
from .tokenizer import IMAGE_TOKEN

CAPTION_PROMPT = 'Caption:'
VQA_PROMPT = 'Question: {question} Answer:'


def caption_prompt() -> str:
    return CAPTION_PROMPT


def vqa_prompt(question: str) -> str:
    """The VQA prompt; an empty question is refused."""
    if not isinstance(question, str) or not question.strip():
        raise InputError(f'empty question: {question!r}')
    check_text(question, 'the question')
    return VQA_PROMPT.format(question=question.strip())


def target_text(text: str) -> str:
    """A caption or answer as the raw path learns to write it: one leading space, no surrounding blanks."""
    return ' ' + text.strip()


def conversation(turns: Sequence[Tuple[str, Optional[str]]], images: int = 1) -> List[Message]:
    """User / assistant messages from (prompt, answer) turns; `images` placeholders open the first user turn
    (LLaVA's order: the image before the text). A last answer of None leaves the conversation open for the model
    to answer."""
    messages: List[Message] = []
    for index, (prompt, answer) in enumerate(turns):
        if index and messages[-1]['role'] != 'assistant':
            raise InputError('only the last turn of a conversation may leave its answer to the model')
        placeholders = IMAGE_TOKEN * images if index == 0 and IMAGE_TOKEN not in prompt else ''
        messages.append({'role': 'user', 'content': placeholders + prompt})
        if answer is not None:
            messages.append({'role': 'assistant', 'content': answer.strip()})
    return messages


def caption_conversation(caption: Optional[str] = None) -> List[Message]:
    """Captioning: the image, 'Caption:', and the caption (None: for the model to write)."""
    return conversation([(caption_prompt(), caption)])


def vqa_conversation(questions: Sequence[str], answers: Optional[Sequence[str]] = None) -> List[Message]:
    """One image and its questions as one conversation: each question a user turn, each answer an assistant turn
    (answers None: a single question for the model to answer)."""
    answers = list(answers) if answers is not None else [None] * len(questions)
    return conversation([(vqa_prompt(q), a) for q, a in zip(questions, answers)])


def text_conversation(prompt: str) -> List[Message]:
    """A text-only question for the decoder (no image)."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError(f'empty prompt: {prompt!r}')
    return [{'role': 'user', 'content': prompt.strip()}]


def prompt_words() -> List[str]:
    """The template words, for a tokenizer trained on a corpus to know them."""
    return [CAPTION_PROMPT, VQA_PROMPT.format(question='')]


def caption_text(caption: str) -> str:
    """A caption as one line of a tokenizer's corpus: 'Caption: {caption}'."""
    return caption_prompt() + target_text(caption)


def vqa_text(question: str, answer: str) -> str:
    """A question with its answer as one line of a tokenizer's corpus: 'Question: {question} Answer: {answer}'."""
    return vqa_prompt(question) + target_text(answer)


def training_corpus(captions: List[str], questions: List[str], answers: List[str]) -> Iterator[str]:
    """Texts to train the BPE tokenizer on: the template words, captions, full VQA prompts with their answers."""
    yield from prompt_words()
    yield from map(caption_text, captions)
    yield from map(vqa_text, questions, answers)
