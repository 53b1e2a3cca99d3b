"""Expected GPU memory per rank for training the vision-language model (ViT-B/16 encoder + projector + a 1B Llama)
under DDP, FSDP2, DeepSpeed ZeRO-2 and ZeRO-3, with Lightning's `bf16-mixed` and AdamW.

Parameters are counted, not assumed: the model is built on the `meta` device (no memory, no weights) from the
same classes training uses (`VisionLanguageModel`: timm encoder `vlm_vit_base_patch16_rope_rms`, the projector,
transformers `LlamaForCausalLM` from a `LlamaConfig` with Llama-3.2-1B's dimensions by default).

Bytes per parameter (T = trainable, F = frozen, N = data-parallel ranks):

- DDP, `bf16-mixed` (torch.autocast; weights stay fp32): weights 4 (T and F), gradients 4, AdamW exp_avg and
  exp_avg_sq 8: 16 per trainable parameter, plus DDP's gradient buckets, a flat fp32 copy of every gradient
  (4 per T; 0 with `gradient_as_bucket_view=True`).
- FSDP2 (`ModelParallelStrategy`, `fully_shard` per encoder block / decoder layer, then the root), `bf16-mixed`
  (autocast, fp32 shards): (4 + 4 + 8) / N per T and 4 / N per F. Transient: the root unit's parameters
  (embeddings, tied lm_head, projector, patch embedding; not resharded between forward and backward) and their
  gradients unsharded (4 + 4 per root parameter), plus two block units' fp32 parameters (the one computing and
  the one prefetched) and one block's gradients before its reduce-scatter.
- DeepSpeed ZeRO with `bf16-mixed` (the module in bf16, fp32 master weights in the optimizer; the ZeRO paper's
  2 + 2 + K with K = 12): ZeRO-2: bf16 weights 2 per parameter on every rank, bf16 gradients 2 / N, fp32 master
  weights + AdamW 12 / N per T. ZeRO-3: everything / N: (2 + 2 + 12) / N per T, 2 / N per F. Buffers: with
  `overlap_comm` DeepSpeed documents 4.5 x (allgather + reduce bucket) elements x 2 bytes (ZeRO-2); ZeRO-3
  gathers the largest module (the 128k x 2048 embedding) plus its prefetch bucket in bf16.

Not counted: the CUDA context and allocator fragmentation (typically 1-3 GB), and activations, which are
estimated separately below (per micro-batch; formulas in `activation_bytes`).

    python -m benchmarks.speed.memory_estimate [--gpus 8] [--micro-batch 32] [--text-tokens 32] [--image-size 224]
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Dict, List, Sequence

import torch
from transformers import LlamaConfig

GIB = 1024 ** 3
LLAMA_3_2_1B = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                    num_key_value_heads=8, head_dim=64, vocab_size=128256, tie_word_embeddings=True)
STRATEGIES = ('DDP', 'FSDP2', 'ZeRO-2', 'ZeRO-3')


@dataclass
class Counts:
    """Parameter counts of the meta-built model, by part and by sharding unit."""
    encoder: int
    projector: int
    decoder: int
    largest_block: int        # the largest encoder block or decoder layer (an FSDP2 unit)
    root: int                 # everything outside the blocks (FSDP2's root unit)
    largest_module: int       # the largest single leaf module (what ZeRO-3 gathers at once)
    encoder_width: int
    encoder_depth: int
    encoder_tokens: int       # per image, with the class token
    image_tokens: int         # per image, after pixel shuffle
    text_config: LlamaConfig  # the decoder's dimensions


def _numel(module: torch.nn.Module) -> int:
    """Parameters of a module, a tied tensor counted once."""
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())


def count_parameters(encoder: str, decoder: Dict, pixel_shuffle: int, image_size: int) -> Counts:
    """Build the VisionLanguageModel on the meta device and count its parameters."""
    from vlm.language.configuration import VisionLanguageConfig
    from vlm.language.modeling import VisionLanguageModel

    text_config = LlamaConfig(**decoder)
    config = VisionLanguageConfig(encoder_name=encoder, pixel_shuffle=pixel_shuffle, text_config=text_config,
                                  image_token_id=decoder['vocab_size'] - 1, image_size=image_size)
    with torch.device('meta'):
        model = VisionLanguageModel(config)
    blocks = [*model.encoder.blocks, *model.language_model.model.layers]
    in_blocks = {id(p) for block in blocks for p in block.parameters()}
    root = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values() if id(p) not in in_blocks)
    leaves = [m for m in model.modules() if not list(m.children())]
    grid = image_size // model.encoder.patch_embed.patch_size[0]
    return Counts(
        encoder=_numel(model.encoder), projector=_numel(model.projector), decoder=_numel(model.language_model),
        largest_block=max(_numel(block) for block in blocks), root=root,
        largest_module=max(_numel(leaf) for leaf in leaves), encoder_width=model.encoder.embed_dim,
        encoder_depth=len(model.encoder.blocks), encoder_tokens=grid * grid + model.encoder.num_prefix_tokens,
        image_tokens=(grid // pixel_shuffle) ** 2, text_config=text_config)


def state_bytes(strategy: str, counts: Counts, trainable: int, frozen: int, gpus: int,
                zero_bucket: float, zero3_prefetch: float) -> Dict[str, float]:
    """Weights, gradients, optimizer state and buffers per GPU, in bytes (see the module docstring)."""
    n = gpus
    if strategy == 'DDP':
        return dict(weights=4 * (trainable + frozen), grads=4 * trainable, optimizer=8 * trainable,
                    buffers=4 * trainable)
    if strategy == 'FSDP2':
        root_trainable = counts.root if trainable else 0
        transient = 4 * counts.root + 4 * root_trainable + 2 * 4 * counts.largest_block + 4 * counts.largest_block
        return dict(weights=4 * (trainable + frozen) / n, grads=4 * trainable / n, optimizer=8 * trainable / n,
                    buffers=transient)
    if strategy == 'ZeRO-2':
        return dict(weights=2 * (trainable + frozen), grads=2 * trainable / n, optimizer=12 * trainable / n,
                    buffers=4.5 * 2 * zero_bucket * 2)
    if strategy == 'ZeRO-3':
        return dict(weights=2 * (trainable + frozen) / n, grads=2 * trainable / n, optimizer=12 * trainable / n,
                    buffers=2 * (counts.largest_module + zero3_prefetch) + 2 * 2 * zero_bucket)
    raise ValueError(strategy)


def activation_bytes(counts: Counts, micro_batch: int, text_tokens: int, encoder_trainable: bool,
                     checkpointing: bool) -> Dict[str, float]:
    """Activation memory kept for the backward pass, per GPU and micro-batch, under bf16 autocast with SDPA
    (no attention-score matrix stored). Estimates, per token and block:

    - encoder block (width d): ~42 d bytes: Korthikanti et al. (2022)'s 34 d for 16-bit activations, plus 8 d for
      the fp32 residual stream that the norms save under autocast. Nothing when the encoder is frozen (no
      parameter and no input needs a gradient).
    - decoder layer (hidden h, key/value width h_kv, MLP width I): 24 h + 4 h_kv + 8 I bytes: two RMSNorms in
      fp32 (~10 h each), q / k / v / output for SDPA (2 (2 h + 2 h_kv)), SwiGLU gate, SiLU, up and product (8 I).
    - logits: every position gets vocabulary logits: 2 (bf16) + 4 (fp32 copy for the loss) + 4 (its gradient)
      bytes per token and vocabulary entry.
    - activation checkpointing: each block keeps only its fp32 input (4 d or 4 h per token) plus one block's
      full activations while it is recomputed.
    """
    cfg = counts.text_config
    h, kv, inter, layers = cfg.hidden_size, cfg.num_key_value_heads * cfg.head_dim, cfg.intermediate_size, \
        cfg.num_hidden_layers
    d, depth = counts.encoder_width, counts.encoder_depth
    encoder_tokens = micro_batch * counts.encoder_tokens
    decoder_tokens = micro_batch * (counts.image_tokens + text_tokens)
    per_encoder_block = 42 * d * encoder_tokens
    per_decoder_layer = (24 * h + 4 * kv + 8 * inter) * decoder_tokens
    if checkpointing:
        encoder = 4 * d * encoder_tokens * depth + per_encoder_block
        decoder = 4 * h * decoder_tokens * layers + per_decoder_layer
    else:
        encoder, decoder = per_encoder_block * depth, per_decoder_layer * layers
    return dict(encoder=encoder if encoder_trainable else 0.0, decoder=decoder,
                logits=10 * decoder_tokens * cfg.vocab_size)


def model_state_gib(strategy: str, encoder: str, decoder: Dict, pixel_shuffle: int, image_size: int,
                    trainable_parts: Sequence[str], gpus: int = 1, zero_bucket: float = 5e7,
                    zero3_prefetch: float = 5e7) -> float:
    """GiB of weights, gradients, AdamW states and buffers per GPU for one model and freeze policy
    (`trainable_parts` among encoder / projector / decoder): what a run's measured peak is compared with."""
    counts = count_parameters(encoder, decoder, pixel_shuffle, image_size)
    sizes = dict(encoder=counts.encoder, projector=counts.projector, decoder=counts.decoder)
    trainable = sum(n for part, n in sizes.items() if part in trainable_parts)
    parts = state_bytes(strategy, counts, trainable, sum(sizes.values()) - trainable, gpus, zero_bucket,
                        zero3_prefetch)
    return sum(parts.values()) / GIB


def _gib(value: float) -> str:
    return f'{value / GIB:.2f}'


def markdown_tables(counts: Counts, gpus: int, micro_batch: int, text_tokens: int, zero_bucket: float,
                    zero3_prefetch: float) -> List[str]:
    """The parameter counts, the states table for two freeze policies, and the activation table."""
    lines = [f'Parameters (counted on the meta device): encoder {counts.encoder / 1e6:.1f} M, projector '
             f'{counts.projector / 1e6:.1f} M, decoder {counts.decoder / 1e9:.3f} B (tied embeddings); total '
             f'{(counts.encoder + counts.projector + counts.decoder) / 1e9:.3f} B. FSDP2 root unit '
             f'{counts.root / 1e6:.1f} M, largest block {counts.largest_block / 1e6:.1f} M, largest module '
             f'{counts.largest_module / 1e6:.1f} M.', '']
    policies = {
        'all trainable': (counts.encoder + counts.projector + counts.decoder, 0),
        'encoder frozen (LLaVA stage 2)': (counts.projector + counts.decoder, counts.encoder),
    }
    header = '| strategy | ' + ' | '.join(f'{policy}: weights / grads / AdamW / buffers | total'
                                          for policy in policies) + ' |'
    lines += [f'Model states per GPU in GiB ({gpus} GPUs, bf16-mixed, AdamW):', '', header,
              '|---' * (1 + 2 * len(policies)) + '|']
    for strategy in STRATEGIES:
        cells = []
        for trainable, frozen in policies.values():
            parts = state_bytes(strategy, counts, trainable, frozen, gpus, zero_bucket, zero3_prefetch)
            cells += [' / '.join(_gib(v) for v in parts.values()), f'**{_gib(sum(parts.values()))}**']
        name = strategy if strategy == 'DDP' else f'{strategy} over {gpus}'
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    seq = counts.image_tokens + text_tokens
    lines += ['', f'Activations per GPU in GiB (micro-batch {micro_batch}; {counts.encoder_tokens} encoder tokens '
                  f'and {seq} decoder tokens = {counts.image_tokens} image + {text_tokens} text per sample):', '',
              '| activation checkpointing | encoder (trainable) | decoder | logits | total, encoder trainable | '
              'total, encoder frozen |', '|---|---|---|---|---|---|']
    for checkpointing in (False, True):
        act = activation_bytes(counts, micro_batch, text_tokens, True, checkpointing)
        lines.append(f"| {'on' if checkpointing else 'off'} | {_gib(act['encoder'])} | {_gib(act['decoder'])} | "
                     f"{_gib(act['logits'])} | {_gib(sum(act.values()))} | "
                     f"{_gib(act['decoder'] + act['logits'])} |")
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--encoder', default='vlm_vit_base_patch16_rope_rms')
    parser.add_argument('--gpus', type=int, default=8, help='data-parallel ranks sharding the states')
    parser.add_argument('--micro-batch', type=int, default=32, help='samples per GPU and step')
    parser.add_argument('--text-tokens', type=int, default=32, help='prompt + target tokens per sample')
    parser.add_argument('--image-size', type=int, default=224)
    parser.add_argument('--pixel-shuffle', type=int, default=2)
    parser.add_argument('--zero-bucket', type=float, default=5e7,
                        help='DeepSpeed allgather / reduce bucket size in elements (the DeepSpeed configs set 5e7; '
                             "Lightning's default is 2e8)")
    parser.add_argument('--zero3-prefetch', type=float, default=5e7, help='stage3_prefetch_bucket_size')
    args = parser.parse_args(argv)
    counts = count_parameters(args.encoder, LLAMA_3_2_1B, args.pixel_shuffle, args.image_size)
    print('\n'.join(markdown_tables(counts, args.gpus, args.micro_batch, args.text_tokens, args.zero_bucket,
                                    args.zero3_prefetch)))


if __name__ == '__main__':
    main()
