"""Decode speed of the vision-language model against a bare `LlamaForCausalLM` with the same decoder config and
the same prefix length, in the same process.

The image should cost one encoder pass at prefill and nothing per generated token. Decode time is isolated as
time(generate N tokens) - time(generate 1 token), both with greedy decoding forced to exactly that many tokens
and the KV cache on; rounds alternate the two models so machine noise hits both alike. Prints decode tokens/s
for each at batch 1 and 8, and the ratio VLM / bare (goal >= 0.95).

    python -m benchmarks.speed.generation_speed [--new-tokens 64] [--rounds 5] [--decoder-layers 4] [--hidden 512]
    python -m benchmarks.speed.generation_speed --decoder-path weights/smollm2-135m-instruct    # the real SmolLM2-135M
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Dict, List, Optional

import torch
from transformers import LlamaForCausalLM

from vlm.language.build import build_vision_language_model
from vlm.language.prompts import caption_prompt
from vlm.language.tokenizer import load_tokenizer, train_bpe_tokenizer

WORDS = 'a red blue green circle square star ring cross triangle on the left right of above below two one'.split()


def _timed(generate: Callable[[int], torch.Tensor], tokens: int) -> float:
    start = time.perf_counter()
    generate(tokens)
    return time.perf_counter() - start


def build_models(hidden: int, decoder_layers: int, image_size: int, encoder: str = 'vlm_vit_small_patch16_rope_rms',
                 decoder_path: Optional[str] = None):
    """A VLM (encoder + pixel shuffle 2 + Llama decoder: a new one of `decoder_layers` x `hidden`, or the
    pretrained one in `decoder_path`) and a bare `LlamaForCausalLM` with the same decoder weights, and the VLM's
    processor."""
    if decoder_path:
        tokenizer = load_tokenizer(decoder_path)
        decoder = None
    else:
        tokenizer = train_bpe_tokenizer([' '.join(WORDS)] * 10, vocab_size=300)
        decoder = dict(hidden_size=hidden, intermediate_size=hidden * 3, num_hidden_layers=decoder_layers,
                       num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=1024)
    vlm_model, processor = build_vision_language_model(
        tokenizer, encoder=encoder, decoder=decoder, decoder_path=decoder_path, pixel_shuffle=2,
        image_size=image_size)
    vlm_model.eval()
    bare = LlamaForCausalLM(vlm_model.config.text_config).eval()
    bare.load_state_dict(vlm_model.language_model.state_dict())
    return vlm_model, bare, processor


def decode_rates(vlm_model, bare, processor, batch: int, new_tokens: int, rounds: int) -> Dict[str, float]:
    """Median decode tokens/s of the bare decoder and the VLM at `batch`, over alternating rounds, and the prefix
    length (both get the same)."""
    inputs = processor([caption_prompt()] * batch, [torch.zeros(3, 64, 64, dtype=torch.uint8)] * batch)
    prefix = inputs['input_ids'].shape[1]
    bare_ids = torch.randint(4, len(processor.tokenizer), (batch, prefix))
    runs: Dict[str, Callable[[int], torch.Tensor]] = {
        'bare': lambda n: bare.generate(input_ids=bare_ids, attention_mask=torch.ones_like(bare_ids),
                                        max_new_tokens=n, min_new_tokens=n, do_sample=False),
        'vlm': lambda n: vlm_model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False),
    }
    decode: Dict[str, List[float]] = {name: [] for name in runs}
    with torch.inference_mode():
        for run in runs.values():  # warm-up
            run(2)
        for _ in range(rounds):
            for name, run in runs.items():
                seconds = _timed(run, new_tokens) - _timed(run, 1)
                decode[name].append(batch * (new_tokens - 1) / seconds)
    return {'bare': statistics.median(decode['bare']), 'vlm': statistics.median(decode['vlm']), 'prefix': prefix}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--new-tokens', type=int, default=64)
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--hidden', type=int, default=512)
    parser.add_argument('--decoder-layers', type=int, default=4)
    parser.add_argument('--image-size', type=int, default=224)
    parser.add_argument('--decoder-path', help='a local pretrained Llama folder (e.g. weights/smollm2-135m-instruct)')
    args = parser.parse_args()
    torch.manual_seed(0)
    vlm_model, bare, processor = build_models(args.hidden, args.decoder_layers, args.image_size,
                                              decoder_path=args.decoder_path)
    text = vlm_model.config.text_config
    print(f'decoder: {args.decoder_path or "new"}, {text.num_hidden_layers} layers, hidden {text.hidden_size}; '
          f'encoder ViT-S/16 at {args.image_size} px '
          f'({processor.image_processor.tokens_per_image} image tokens); {args.new_tokens} new tokens, greedy, '
          f'KV cache; '
          f'{torch.get_num_threads()} threads')
    print(f"{'batch':>5} {'prefix':>6} {'bare tok/s':>11} {'vlm tok/s':>10} {'ratio':>6}")
    for batch in (1, 8):
        rates = decode_rates(vlm_model, bare, processor, batch, args.new_tokens, args.rounds)
        print(f"{batch:>5} {rates['prefix']:>6} {rates['bare']:>11.1f} {rates['vlm']:>10.1f} "
              f"{rates['vlm'] / rates['bare']:>6.3f}")


if __name__ == '__main__':
    main()
