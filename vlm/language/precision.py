"""Inference precisions of a vision-language model: decoding one token at batch 1 reads every decoder weight once,
so its speed is bound by memory bandwidth and fewer bytes per weight are faster.

- 'fp32': as trained.
- 'bf16': the decoder's weights in bfloat16 (half the bytes it reads per token; oneDNN's bf16 kernels).
- 'int8': the decoder in bf16 with its linear layers (attention, MLP and the LM head) holding int8 weights, one
  scale per output channel (torchao's `Int8WeightOnlyConfig`; activations stay bf16): a quarter of fp32's bytes.
The image path (encoder, tagger, projector) runs once per image at prefill and stays in fp32 in every precision:
its tags decide the words the decoder reads, and bf16 there moved captions (CIDEr -0.03 on shapes val) for no
decoding speed.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from vlm.errors import InputError

PRECISIONS: Tuple[str, ...] = ('fp32', 'bf16', 'int8')


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise InputError(f'--precision must be one of {", ".join(PRECISIONS)}, got {precision!r}')


def set_inference_precision(model: nn.Module, precision: str) -> nn.Module:
    """`model` (a `VisionLanguageModel`, or a bare transformers causal LM) in `precision`, in place, for inference
    only (int8 weights do not train). Returns the model."""
    check_precision(precision)
    model.to(torch.float32)
    if precision == 'fp32':
        return model
    decoder = model.language_model if hasattr(model, 'language_model') else model
    decoder.to(torch.bfloat16)
    if precision == 'int8':
        try:
            from torchao.quantization import Int8WeightOnlyConfig, quantize_
        except ImportError:
            raise InputError("--precision int8 needs torchao: pip install -e '.[fast]'") from None
        untie_output_embeddings(decoder)
        quantize_(decoder, Int8WeightOnlyConfig(), filter_fn=lambda module, name: isinstance(module, nn.Linear))
    return model


def untie_output_embeddings(decoder: nn.Module) -> None:
    """Give the LM head its own copy of the input embeddings when they are tied (SmolLM2): the head is then
    quantized as a linear layer while the embedding lookup keeps its table."""
    head = decoder.get_output_embeddings() if hasattr(decoder, 'get_output_embeddings') else None
    embeddings = decoder.get_input_embeddings() if hasattr(decoder, 'get_input_embeddings') else None
    if head is not None and embeddings is not None and head.weight is embeddings.weight:
        head.weight = nn.Parameter(embeddings.weight.detach().clone(), requires_grad=False)
        if hasattr(decoder, 'config'):
            decoder.config.tie_word_embeddings = False


def weight_bytes_per_token(model: nn.Module) -> int:
    """Bytes of weights one decoding step reads: every parameter and buffer of the decoder except the input
    embedding table (a lookup reads one row); the LM head counts even when tied to it. Quantized tensors count
    their stored bytes (int8 data and scales)."""
    decoder = model.language_model if hasattr(model, 'language_model') else model
    embeddings = decoder.get_input_embeddings().weight
    head = decoder.get_output_embeddings()
    total, seen = 0, set()
    for tensor in [*decoder.parameters(), *decoder.buffers()]:
        if id(tensor) in seen or tensor is embeddings:
            continue
        seen.add(id(tensor))
        total += stored_bytes(tensor)
    if head is not None and head.weight is embeddings:
        total += stored_bytes(embeddings)
    return total


def stored_bytes(tensor: torch.Tensor) -> int:
    """Bytes a tensor holds: its inner tensors for a tensor subclass (torchao's quantized weights)."""
    flatten = getattr(tensor, '__tensor_flatten__', None)
    if flatten is not None and type(tensor) not in (torch.Tensor, nn.Parameter):
        names, _ = flatten()
        return sum(stored_bytes(getattr(tensor, name)) for name in names)
    return tensor.numel() * tensor.element_size()
