"""Assemble a `VisionLanguageModel` + `VisionLanguageProcessor` from a tokenizer and the parts' settings."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase

from vlm.data.transforms import normalization_for

from .configuration import VisionLanguageConfig
from .modeling import VisionLanguageModel
from .processor import VisionLanguageProcessor
from .tokenizer import IMAGE_TOKEN

TINY_LLAMA: Dict[str, Any] = dict(hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4,
                                  num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True)


def build_vision_language_model(
        tokenizer: PreTrainedTokenizerBase,
        encoder: str = 'vlm_vit_small_patch16_rope_rms',
        encoder_kwargs: Optional[Dict[str, Any]] = None,
        decoder: Optional[Dict[str, Any]] = None,
        decoder_path: Optional[str] = None,
        pixel_shuffle: int = 1,
        projector_hidden_size: Optional[int] = None,
        image_size: int = 224,
) -> Tuple[VisionLanguageModel, VisionLanguageProcessor]:
    """A model whose decoder is either a new `LlamaForCausalLM(LlamaConfig(**decoder))` (vocabulary = the
    tokenizer's) or the pretrained one in the local directory `decoder_path`; its embeddings are resized when
    the tokenizer has tokens the decoder lacks (`<image>`, `<pad>`)."""
    special = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                   pad_token_id=tokenizer.pad_token_id)
    if decoder_path is not None:
        if not Path(decoder_path).is_dir():
            raise FileNotFoundError(f'decoder directory {decoder_path} does not exist')
        text_config = LlamaConfig.from_pretrained(decoder_path, local_files_only=True)
    else:
        text_config = LlamaConfig(**{**TINY_LLAMA, **(decoder or {}), 'vocab_size': len(tokenizer), **special})
    mean, std = normalization_for(encoder)
    config = VisionLanguageConfig(
        encoder_name=encoder, encoder_kwargs=encoder_kwargs, pixel_shuffle=pixel_shuffle,
        projector_hidden_size=projector_hidden_size, text_config=text_config,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN), image_size=image_size, image_mean=mean,
        image_std=std, **special)
    model = VisionLanguageModel(config)
    if decoder_path is not None:
        model.language_model = LlamaForCausalLM.from_pretrained(
            decoder_path, local_files_only=True, dtype=torch.float32)
        config.text_config = model.language_model.config
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        model.language_model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    model.generation_config.update(**special)
    return model, VisionLanguageProcessor.from_model_config(tokenizer, config)
