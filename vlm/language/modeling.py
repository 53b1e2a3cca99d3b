"""`VisionLanguageModel`: RoPE/RMSNorm encoder -> projector -> `transformers.LlamaForCausalLM`.

A transformers `PreTrainedModel` + `GenerationMixin`, so `save_pretrained` / `from_pretrained` (safetensors) and
`generate` (greedy, sampling, beam search, KV cache, left-padded batches, streamers) are transformers' own. The
image is encoded once, at prefill: `generate` drops `pixel_values` from later steps, which only read the cache.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

import torch
from torch import nn
from transformers import GenerationMixin, LlamaForCausalLM, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from vlm.encoder import create_encoder, dense_features
from vlm.errors import InputError

from .configuration import VisionLanguageConfig
from .projector import Projector
from .tagger import CellTagger, TagLogits, annotated_tags, check_grid, predicted_tags, tag_tokens, word_embeddings
from .tags import TagSettings
from .tokenizer import IGNORE_INDEX


@dataclass
class VisionLanguageOutput(CausalLMOutputWithPast):
    """The decoder's output, and with a tagger and tag targets, its logits (`TagLogits`) for the tag loss."""

    tag_logits: Optional[TagLogits] = None


class ImageTokenMismatchError(InputError):
    """The `<image>` placeholders in a batch do not match the images given."""


def build_encoder(config: VisionLanguageConfig) -> nn.Module:
    """The timm encoder named in `config`, headless; fills in `encoder_hidden_size` and `patch_size`."""
    encoder = create_encoder(config.encoder_name, config.encoder_kwargs)
    config.encoder_hidden_size = encoder.num_features
    patch = encoder.patch_embed.patch_size
    config.patch_size = int(patch[0] if isinstance(patch, (tuple, list)) else patch)
    return encoder


class VisionLanguageModel(PreTrainedModel, GenerationMixin):
    """Image tokens from `encoder` + `projector` replace the embeddings of the `<image>` placeholders in the
    prompt; `language_model` (a `LlamaForCausalLM`) does the rest.

    An image of H x W pixels yields (H / (p s)) * (W / (p s)) tokens (p: patch size, s: pixel shuffle), so the
    number of placeholders follows the resolution: `config.image_tokens(H, W)`.
    """

    config_class = VisionLanguageConfig
    config: VisionLanguageConfig
    base_model_prefix = 'vlm'
    main_input_name = 'input_ids'
    input_modalities = ('image', 'text')
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _no_split_modules = ['LlamaDecoderLayer']

    def __init__(self, config: VisionLanguageConfig) -> None:
        super().__init__(config)
        self.encoder = build_encoder(config)
        text_hidden = config.text_config.hidden_size
        self.projector = Projector(
            config.encoder_hidden_size, text_hidden, config.projector_hidden_size or text_hidden, config.pixel_shuffle,
            config.projector)
        self.tag_settings = TagSettings.of(config.tags)
        self.tagger = (CellTagger(config.encoder_hidden_size, self.tag_settings, config.pixel_shuffle)
                       if self.tag_settings is not None else None)
        self.language_model = LlamaForCausalLM(config.text_config)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """Only the projector is initialised here: timm, Llama and the tagger initialise their own modules. With a
        tagger, the projector's output layer starts at zero: the image tokens are the tag words alone at first, and
        the continuous tokens grow only as far as they help."""
        if isinstance(module, nn.Linear) and any(module is m for m in self.projector.modules()):
            nn.init.normal_(module.weight, std=self.config.text_config.initializer_range)
            if self.config.tags is not None and module is self.projector.fc2:
                nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def get_decoder(self) -> nn.Module:
        return self.language_model.get_decoder()

    def get_image_features(self, pixel_values: torch.Tensor, tag_centres: Optional[torch.Tensor] = None,
                           tag_labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, 3, H, W) images -> (B, N, D) decoder-space image tokens, N = config.image_tokens(H, W)."""
        return self.encode_images(pixel_values, tag_centres, tag_labels)[0]

    def tag(self, pixel_values: torch.Tensor) -> TagLogits:
        """The tagger's logits for (B, 3, H, W) images, on the (H/(p s), W/(p s)) token grid."""
        if self.tagger is None:
            raise ValueError('this model has no tagger (its config has no tags)')
        return self.tagger(self._grids(pixel_values), pixel_values)

    def _grids(self, pixel_values: torch.Tensor, tagger_reads: bool = True) -> List[torch.Tensor]:
        """The encoder's grids the tagger reads (at `tags.indices`; none when not `tagger_reads`), the final one
        last: [(B, C, H/p, W/p)]."""
        indices = self.tag_settings.indices if self.tag_settings is not None and tagger_reads else ()
        encoder_dtype = next(self.encoder.parameters()).dtype
        features = dense_features(self.encoder, pixel_values.to(encoder_dtype), indices=indices, norm=True)
        return [*features.intermediates, features.last]

    def encode_images(self, pixel_values: torch.Tensor, tag_centres: Optional[torch.Tensor] = None,
                      tag_labels: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Optional[TagLogits]]:
        """(B, 3, H, W) images -> (image tokens (B, N, D), the tagger's logits or None).

        Image tokens: the projector's continuous tokens, plus with a tagger its tag tokens (`tag_tokens`): from
        the tagger's predictions, or with `tags.source: annotations` from the ground-truth targets tag_centres
        (B, g_h, g_w) and tag_labels (B, V, g_h, g_w) (the oracle)."""
        settings = self.tag_settings
        oracle = settings is not None and settings.source == 'annotations'
        if oracle and (tag_centres is None or tag_labels is None):
            raise InputError("this model's tags come from annotations (tags.source: annotations, the oracle): "
                             'give the images\' instance annotations')
        # the oracle never reads the tagger: only the final grid is computed (no intermediates, no tagger pass)
        grids = self._grids(pixel_values, tagger_reads=not oracle)
        vocabulary = (self.get_input_embeddings().weight.to(grids[-1].dtype) if self.projector.kind == 'vocabulary'
                      else None)  # the decoder may run in another precision than the image path
        tokens = self.projector(grids[-1], vocabulary)  # (B, N, D)
        if self.tagger is None:
            return tokens, None
        if oracle:
            if tag_centres.shape[-2] * tag_centres.shape[-1] != tokens.shape[1]:
                raise ValueError(f'tag targets of {tuple(tag_centres.shape[-2:])} cells for {tokens.shape[1]} '
                                 f'image tokens')
            logits = None
            tags = annotated_tags(tag_centres, tag_labels, [len(w) for w in settings.vocabularies.values()])
        else:
            logits = self.tagger(grids, pixel_values)
            check_grid(logits, tag_centres)
            tags = predicted_tags(logits)
        embeddings = self.get_input_embeddings().weight.to(tokens.dtype)
        vocabularies = [word_embeddings(embeddings, ids) for ids in self.config.tag_word_ids]
        return tokens + tag_tokens(tags.centre, tags.words, vocabularies).to(tokens.dtype), logits

    def merge_image_tokens(
            self, input_ids: torch.Tensor, inputs_embeds: torch.Tensor, pixel_values: Optional[torch.Tensor],
            image_index: Optional[torch.Tensor] = None,
            tag_centres: Optional[torch.Tensor] = None,
            tag_labels: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, Optional[TagLogits]]:
        """Write each image's tokens into its placeholders, in order. input_ids (B, L), inputs_embeds (B, L, D);
        image_index (R,): the row of pixel_values each placeholder run shows (default: one image per run).
        Returns the embeddings and the tagger's logits (None without a tagger or images)."""
        placeholders = input_ids == self.config.image_token_id  # (B, L)
        count = int(placeholders.sum())
        if pixel_values is None:
            if count:
                raise ImageTokenMismatchError(f'the prompt has {count} <image> tokens but no image was given')
            return inputs_embeds, None
        image_tokens, tag_logits = self.encode_images(pixel_values, tag_centres, tag_labels)  # (I, N, D)
        if image_index is not None:
            if image_index.numel() and not 0 <= int(image_index.min()) <= int(image_index.max()) < len(image_tokens):
                raise ImageTokenMismatchError(
                    f'image_index holds {image_index.tolist()} but there are {len(image_tokens)} images')
            image_tokens = image_tokens[image_index.to(image_tokens.device)]  # (R, N, D): each image encoded once
        if count != image_tokens.shape[0] * image_tokens.shape[1]:
            raise ImageTokenMismatchError(
                f'{image_tokens.shape[0]} images of {tuple(pixel_values.shape[-2:])} px give '
                f'{image_tokens.shape[0]} x {image_tokens.shape[1]} image tokens, but the prompts have {count} '
                f'<image> placeholders')
        mask = placeholders.unsqueeze(-1).expand_as(inputs_embeds)
        return inputs_embeds.masked_scatter(mask, image_tokens.to(inputs_embeds.dtype)), tag_logits

    def forward(
            self,
            input_ids: Optional[torch.LongTensor] = None,
            pixel_values: Optional[torch.Tensor] = None,
            attention_mask: Optional[torch.Tensor] = None,
            position_ids: Optional[torch.LongTensor] = None,
            inputs_embeds: Optional[torch.Tensor] = None,
            labels: Optional[torch.LongTensor] = None,
            logits_to_keep: int | torch.Tensor = 0,
            image_index: Optional[torch.LongTensor] = None,
            tag_centres: Optional[torch.Tensor] = None,
            tag_labels: Optional[torch.Tensor] = None,
            labelled_logits_only: bool = False,
            **kwargs: Any,
    ) -> VisionLanguageOutput:
        """input_ids (B, L) with `<image>` placeholders; pixel_values (I, 3, H, W), one per placeholder run, in
        batch order, or, with image_index (R,), the I distinct images the R runs show (several prompts about one
        image encode it once); labels (B, L) with -100 where no loss is taken. Returns the decoder's
        `CausalLMOutputWithPast` (loss, logits (B, L, V), cache). Remaining kwargs (the KV cache, use_cache, ...)
        go to the decoder.

        labelled_logits_only (training): the output layer runs only where a label follows (the caption / answer
        tokens), logits (N, V) for those N positions: the same loss as transformers' (mean next-token
        cross-entropy over the labelled positions) without the (B, L, V) logits of prompt, image and padding
        positions, which for a 49k vocabulary are a quarter of a 135M decoder's step."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError('give exactly one of input_ids and inputs_embeds')
        tag_logits = None
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)  # (B, L, D)
            inputs_embeds, tag_logits = self.merge_image_tokens(input_ids, inputs_embeds, pixel_values, image_index,
                                                                tag_centres, tag_labels)
        if labelled_logits_only and labels is not None:
            hidden = self.get_decoder()(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                        position_ids=position_ids, **kwargs).last_hidden_state  # (B, L, D)
            targets = labels[:, 1:]  # (B, L-1): position t predicts token t+1
            keep = targets != IGNORE_INDEX
            logits = self.get_output_embeddings()(hidden[:, :-1][keep])  # (N, V)
            loss = nn.functional.cross_entropy(logits.float(), targets[keep])
            return VisionLanguageOutput(loss=loss, logits=logits, tag_logits=tag_logits)
        output = self.language_model(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids, labels=labels,
            logits_to_keep=logits_to_keep, **kwargs)
        return VisionLanguageOutput(**output, tag_logits=tag_logits)
