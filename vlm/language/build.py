"""Assemble a `VisionLanguageModel` + `VisionLanguageProcessor` from a tokenizer and the parts' settings."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from vlm.encoder import encoder_normalization, load_encoder_weights, resolve_local_dir
from vlm.errors import InputError, MissingFileError

from .configuration import VisionLanguageConfig
from .modeling import VisionLanguageModel
from .processor import VisionLanguageProcessor
from .tags import TagSettings
from .tokenizer import IMAGE_TOKEN

TINY_LLAMA: Dict[str, Any] = dict(hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4,
                                  num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True)


def build_vision_language_model(
        tokenizer: PreTrainedTokenizerBase,
        *,
        encoder: str = 'vlm_vit_small_patch16_rope_rms',
        encoder_kwargs: Optional[Dict[str, Any]] = None,
        decoder: Optional[Dict[str, Any]] = None,
        decoder_path: Optional[str] = None,
        pixel_shuffle: int = 1,
        projector_hidden_size: Optional[int] = None,
        image_size: int = 224,
        encoder_weights: Optional[str] = None,
        projector: str = 'mlp',
        tags: Optional[Union[TagSettings, Mapping[str, Any]]] = None,
) -> Tuple[VisionLanguageModel, VisionLanguageProcessor]:
    """A model whose decoder is either a new `LlamaForCausalLM(LlamaConfig(**decoder))` (vocabulary = the
    tokenizer's) or the pretrained one in the local directory `decoder_path` (loaded in float32, offline).

    Tokens the tokenizer has and a pretrained decoder lacks (`<image>`, and `<pad>` when it had none) get new
    embedding rows set to the mean of the pretrained rows: an input row of `<image>` is never read (image tokens
    replace it), and with tied embeddings its output row gives the new token an average logit, so the decoder's
    predictions over its own vocabulary are those of the original model. encoder_weights: initial encoder weights
    (a local file or any vlm checkpoint). projector: 'mlp' or 'vocabulary' (`VisionLanguageConfig`). tags: the
    cell tagger's settings (`TagSettings`), its words looked up in the tokenizer (`tag_word_ids`)."""
    special = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                   pad_token_id=tokenizer.pad_token_id)
    if decoder_path is not None:
        if not (Path(decoder_path) / 'config.json').is_file():
            raise MissingFileError(decoder_path, 'not a Hugging Face model directory (no config.json); write one '
                                                 'with `vlm weights smollm2-135m-instruct --out DIR`')
        text_config = LlamaConfig.from_pretrained(decoder_path, local_files_only=True)
    else:
        text_config = LlamaConfig(**{**TINY_LLAMA, **(decoder or {}), 'vocab_size': len(tokenizer), **special})
    mean, std = encoder_normalization(encoder)
    # a local-dir: encoder is stored by architecture and arguments, its folder's weights loaded below: the model's
    # config (and so an export) does not depend on the folder
    encoder, encoder_kwargs, folder_weights = resolve_local_dir(encoder, encoder_kwargs)
    encoder_weights = encoder_weights or folder_weights
    tags = TagSettings.of(tags)
    config = VisionLanguageConfig(
        encoder_name=encoder, encoder_kwargs=encoder_kwargs, pixel_shuffle=pixel_shuffle,
        projector_hidden_size=projector_hidden_size, projector=projector, text_config=text_config,
        tags=tags.as_dict() if tags else None, tag_word_ids=tag_word_ids(tokenizer, tags) if tags else None,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN), image_size=image_size, image_mean=mean,
        image_std=std, **special)
    model = VisionLanguageModel(config)
    if encoder_weights:
        load_encoder_weights(model.encoder, encoder_weights, strict=False, exclude_prefixes=('head.',))
    if decoder_path is not None:
        model.language_model = LlamaForCausalLM.from_pretrained(
            decoder_path, local_files_only=True, dtype=torch.float32)
        grow_embeddings(model.language_model, len(tokenizer))
        config.text_config = model.language_model.config
    model.generation_config.update(**special)
    return model, VisionLanguageProcessor.from_model_config(tokenizer, config)


def tag_word_ids(tokenizer: PreTrainedTokenizerBase, tags: TagSettings) -> List[List[List[int]]]:
    """Each tag word's token ids as the word is written inside a sentence (after a space), per vocabulary."""
    ids = [[tokenizer(' ' + word.strip(), add_special_tokens=False).input_ids for word in words]
           for words in tags.vocabularies.values()]
    empty = [word for words, row in zip(tags.vocabularies.values(), ids) for word, t in zip(words, row) if not t]
    if empty:
        raise InputError(f'tag words {empty} have no tokens in this tokenizer')
    return ids


@torch.no_grad()
def grow_embeddings(decoder: LlamaForCausalLM, vocab_size: int) -> None:
    """Resize the decoder's (input and output) embeddings to `vocab_size`, new rows = the mean of the old ones."""
    old = decoder.get_input_embeddings().num_embeddings
    if old >= vocab_size:
        return
    decoder.resize_token_embeddings(vocab_size, mean_resizing=False)
    for embeddings in {id(m): m for m in (decoder.get_input_embeddings(), decoder.get_output_embeddings())}.values():
        embeddings.weight[old:] = embeddings.weight[:old].mean(0)
