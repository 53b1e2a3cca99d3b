"""A vision-language checkpoint carries its tokenizer (the BPE trained at `fit` has no other home), so validate,
export and a second training stage need nothing else; and the model's weights start from such a checkpoint only
with the same vocabulary (token embeddings are rows by id)."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Dict, Mapping, Union

from transformers import PreTrainedTokenizerBase

from vlm.encoder.weights import shape_mismatches
from vlm.errors import CheckpointShapeError
from vlm.io.checkpoints import read_checkpoint

from .modeling import VisionLanguageModel
from .tokenizer import load_tokenizer

TOKENIZER_KEY = 'vlm_tokenizer_files'
MODEL_PREFIX = 'model.'


def tokenizer_to_files(tokenizer: PreTrainedTokenizerBase) -> Dict[str, str]:
    """A tokenizer as {file name: text}: what `save_pretrained` writes, so a checkpoint can carry it."""
    with tempfile.TemporaryDirectory() as directory:
        tokenizer.save_pretrained(directory)
        return {path.name: path.read_text(encoding='utf-8') for path in Path(directory).iterdir() if path.is_file()
                and path.suffix in ('.json', '.txt', '.jinja')}


def tokenizer_from_files(files: Mapping[str, str]) -> PreTrainedTokenizerBase:
    with tempfile.TemporaryDirectory() as directory:
        for name, text in files.items():
            (Path(directory) / name).write_text(text, encoding='utf-8')
        return load_tokenizer(directory)


def checkpoint_tokenizer_files(checkpoint: Mapping[str, Any], path: Union[str, Path]) -> Dict[str, str]:
    """The tokenizer files stored in a vision-language checkpoint (read from `path`)."""
    files = checkpoint.get(TOKENIZER_KEY)
    if not files:
        raise CheckpointShapeError(f'{path}: no tokenizer inside: not a checkpoint of a vision-language model '
                                   f'(vlm.tasks.VisionLanguageTask)')
    return dict(files)


def same_vocabulary(first: PreTrainedTokenizerBase, second: PreTrainedTokenizerBase) -> bool:
    return first.get_vocab() == second.get_vocab() and first.all_special_tokens == second.all_special_tokens


def load_model_weights(model: VisionLanguageModel, tokenizer: PreTrainedTokenizerBase,
                       path: Union[str, Path]) -> None:
    """Load a vision-language checkpoint's model weights into `model` (strict), refusing one whose tokenizer
    differs from `tokenizer` (its embeddings would be read under other ids) or whose tensors do not fit."""
    checkpoint = read_checkpoint(path)
    theirs = tokenizer_from_files(checkpoint_tokenizer_files(checkpoint, path))
    if not same_vocabulary(theirs, tokenizer):
        raise CheckpointShapeError(
            f'{path}: its tokenizer differs from this run\'s, so its token embeddings would be read under other ids; '
            'leave `tokenizer` unset to continue with the checkpoint\'s own')
    state = checkpoint.get('state_dict', {})
    weights = {key[len(MODEL_PREFIX):]: value for key, value in state.items() if key.startswith(MODEL_PREFIX)}
    mismatched = shape_mismatches(weights, model.state_dict())
    if mismatched or not weights:
        raise CheckpointShapeError(f'{path}: does not fit this model:\n  ' + '\n  '.join(mismatched or ['no weights']))
    model.load_state_dict(weights, strict=True)
