"""`VisionLanguageConfig`: the encoder (a timm name + kwargs), the projector, and a `LlamaConfig` for the decoder."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from transformers import LlamaConfig, PretrainedConfig

from vlm.errors import InputError


class VisionLanguageConfig(PretrainedConfig):
    """Configuration of `VisionLanguageModel`.

    encoder_name / encoder_kwargs: any timm model with `forward_intermediates` (the vlm RoPE/RMSNorm ViTs by default),
        built headless by `vlm.encoder.create_encoder(encoder_name, encoder_kwargs)`.
    encoder_hidden_size / patch_size: the encoder's width and patch size (filled in by the model when None).
    pixel_shuffle: s, the projector's token reduction: each s x s group of patch tokens becomes one token with
        s^2 times the channels (Idefics3 / nanoVLM). 1 keeps one token per patch.
    projector_hidden_size: hidden width of the 2-layer GELU MLP (default: the decoder's hidden size).
    projector: 'mlp' (the MLP's output is the image token) or 'vocabulary' (it is a query whose soft look-up in the
        decoder's word embeddings is the image token; `vlm.language.projector.soft_vocabulary_lookup`).
    tags: the cell tagger's settings (`vlm.language.tags.TagSettings` as a dict; None: no tagger), whose image tokens
        are added to the projector's; tag_word_ids: each tag word's token ids in the decoder's vocabulary, per
        vocabulary (filled in by `build_vision_language_model` from the tokenizer).
    text_config: a `LlamaConfig` (or its dict) for the `LlamaForCausalLM` decoder.
    image_token_id: the id of the `<image>` placeholder token in the tokenizer.
    image_size / image_mean / image_std: the processor's image settings (square resize, then normalise).
    """

    model_type = 'vlm_vision_language'
    sub_configs = {'text_config': LlamaConfig}

    def __init__(
            self,
            encoder_name: str = 'vlm_vit_small_patch16_rope_rms',
            encoder_kwargs: Optional[Dict[str, Any]] = None,
            encoder_hidden_size: Optional[int] = None,
            patch_size: Optional[int] = None,
            pixel_shuffle: int = 1,
            projector_hidden_size: Optional[int] = None,
            projector: str = 'mlp',
            tags: Optional[Dict[str, Any]] = None,
            tag_word_ids: Optional[List[List[List[int]]]] = None,
            text_config: Optional[Union[LlamaConfig, Dict[str, Any]]] = None,
            image_token_id: int = 0,
            image_size: int = 224,
            image_mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
            image_std: Sequence[float] = IMAGENET_DEFAULT_STD,
            **kwargs: Any,
    ) -> None:
        if isinstance(text_config, dict):
            text_config = LlamaConfig(**text_config)
        self.text_config = text_config if text_config is not None else LlamaConfig()
        self.encoder_name = encoder_name
        self.encoder_kwargs = dict(encoder_kwargs or {})
        self.encoder_hidden_size = encoder_hidden_size
        self.patch_size = patch_size
        if pixel_shuffle < 1:
            raise ValueError(f'pixel_shuffle must be >= 1, got {pixel_shuffle}')
        self.pixel_shuffle = pixel_shuffle
        self.projector_hidden_size = projector_hidden_size
        self.projector = projector
        self.tags = dict(tags) if tags is not None else None
        self.tag_word_ids = tag_word_ids
        self.image_token_id = image_token_id
        self.image_size = image_size
        self.image_mean = list(image_mean)
        self.image_std = list(image_std)
        kwargs.setdefault('tie_word_embeddings', self.text_config.tie_word_embeddings)
        super().__init__(**kwargs)

    def image_tokens(self, height: int, width: int) -> int:
        """Number of `<image>` tokens an image of height x width pixels becomes."""
        rows, columns = image_token_grid(height, width, self.patch_size, self.pixel_shuffle)
        return rows * columns


def image_token_grid(height: int, width: int, patch_size: int, pixel_shuffle: int) -> Tuple[int, int]:
    """(rows, columns) of image tokens of a height x width image: each side over patch_size * pixel_shuffle, which
    must divide it. The one place the tokens-per-image formula lives (the model's config and the processor ask it)."""
    unit = patch_size * pixel_shuffle
    if height <= 0 or width <= 0 or height % unit or width % unit:
        raise InputError(f'image size {height}x{width} is not a positive multiple of patch_size * pixel_shuffle = '
                         f'{unit}')
    return height // unit, width // unit
