"""Tokenizers: a byte-level BPE trained with `tokenizers` (the shapes default), or any local Hugging Face one.

Either way the result is a `PreTrainedTokenizerFast` with bos, eos, pad and the `<image>` placeholder token.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Union

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from .chat import DEFAULT_CHAT_TEMPLATE

IMAGE_TOKEN = '<image>'
IGNORE_INDEX = -100  # the label of positions without a loss (transformers' convention)
BOS, EOS, PAD = '<s>', '</s>', '<pad>'


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 1024, min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """A byte-level BPE (GPT-2 style: any string encodes, nothing is unknown) trained on `texts`.

    Special tokens take ids 0..3: <pad>, <s>, </s>, <image>. Deterministic for the same texts in the same order.
    """
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[PAD, BOS, EOS, IMAGE_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS, pad_token=PAD)
    fast.chat_template = DEFAULT_CHAT_TEMPLATE  # saved with it: an export renders prompts as it was trained
    return with_vlm_special_tokens(fast)


def with_vlm_special_tokens(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Add what a vlm prompt needs and `tokenizer` lacks: the `<image>` token, and a pad token (a new `<pad>`).

    Grows the vocabulary when it adds tokens: resize the decoder's embeddings to `len(tokenizer)` after.
    """
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({'additional_special_tokens': [IMAGE_TOKEN]}, replace_extra_special_tokens=False)
    if tokenizer.pad_token is None:
        tokenizer.add_special_tokens({'pad_token': PAD})
    if tokenizer.bos_token is None or tokenizer.eos_token is None:
        raise ValueError(f'tokenizer {tokenizer.name_or_path!r} needs a bos and an eos token')
    return tokenizer


def load_tokenizer(path: Union[str, Path]) -> PreTrainedTokenizerBase:
    """A tokenizer from a local directory (never downloads, never runs remote code), with the vlm tokens."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f'tokenizer directory {path} does not exist')
    return with_vlm_special_tokens(AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False))
