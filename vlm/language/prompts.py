"""The one prompt format of vlm, for training and inference alike.

    captioning:  <s> <image>*N Caption:            -> target " {caption}</s>"
    VQA:         <s> <image>*N Question: {q} Answer: -> target " {answer}</s>"
    text only:   <s> {prompt}                      -> the model continues the text

N = the image's token count (`VisionLanguageConfig.image_tokens(H, W)`). A prompt may place `<image>` itself,
once per image, anywhere (several images per prompt); without one, the image goes first.
"""
from __future__ import annotations

from typing import Iterator, List

from vlm.data.errors import InputError

CAPTION_PROMPT = 'Caption:'
VQA_PROMPT = 'Question: {question} Answer:'


def caption_prompt() -> str:
    return CAPTION_PROMPT


def vqa_prompt(question: str) -> str:
    """The VQA prompt; an empty question is refused."""
    if not isinstance(question, str) or not question.strip():
        raise InputError(f'empty question: {question!r}')
    return VQA_PROMPT.format(question=question.strip())


def target_text(text: str) -> str:
    """A caption or answer as the model learns to write it: one leading space, no surrounding blanks."""
    return ' ' + text.strip()


def prompt_words() -> List[str]:
    """The template words, for a tokenizer trained on a corpus to know them."""
    return [CAPTION_PROMPT, VQA_PROMPT.format(question='')]


def training_corpus(captions: List[str], questions: List[str], answers: List[str]) -> Iterator[str]:
    """Texts to train the BPE tokenizer on: captions, full VQA prompts with their answers, the template words."""
    yield from prompt_words()
    for caption in captions:
        yield caption_prompt() + target_text(caption)
    for question, answer in zip(questions, answers):
        yield vqa_prompt(question) + target_text(answer)
