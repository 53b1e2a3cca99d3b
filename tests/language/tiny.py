"""Tiny vision-language models and tokenizers for the tests (seconds on a CPU)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Tuple

import torch

from vlm.language.build import build_vision_language_model
from vlm.language.modeling import VisionLanguageModel
from vlm.language.processor import VisionLanguageProcessor
from vlm.language.prompts import training_corpus
from vlm.language.tokenizer import train_bpe_tokenizer

CAPTIONS = ['a red circle on the left', 'a blue square at the top', 'two green stars', 'one yellow triangle',
            'a red ring and a blue cross']
QUESTIONS = [('what color is the circle?', 'red'), ('how many stars are there?', 'two'),
             ('is there a square?', 'yes')]
TINY_ENCODER = dict(patch_size=8, img_size=32, depth=2, embed_dim=64, num_heads=2)
TINY_DECODER = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, max_position_embeddings=64)


def tiny_tokenizer():
    questions, answers = zip(*QUESTIONS)
    return train_bpe_tokenizer(list(training_corpus(CAPTIONS, list(questions), list(answers))) * 3, vocab_size=300)


def tiny_model(tokenizer=None, **overrides: Any) -> Tuple[VisionLanguageModel, VisionLanguageProcessor]:
    torch.manual_seed(0)
    options: Dict[str, Any] = dict(encoder='vlm_vit_tiny_patch16_rope_rms', encoder_kwargs=TINY_ENCODER,
                                   decoder=TINY_DECODER, pixel_shuffle=2, image_size=32)
    options.update(overrides)
    model, processor = build_vision_language_model(tokenizer or tiny_tokenizer(), **options)
    return model.eval(), processor


def random_images(count: int, size: int = 32, seed: int = 0) -> List[torch.Tensor]:
    """(3, size, size) uint8 images."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=generator) for _ in range(count)]


def export_tiny_model(out: Path) -> Path:
    """A tiny model folder, as `vlm export` writes it (config, safetensors weights, tokenizer, processor config)."""
    model, processor = tiny_model()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def memorizing_model(images: List[torch.Tensor], captions: List[str], steps: int = 150
                     ) -> Tuple[VisionLanguageModel, VisionLanguageProcessor]:
    """A tiny model trained (AdamW, lr 3e-3, full batch) until it reproduces each image's caption, in eval mode:
    its greedy answers have the margins of a trained model's."""
    from vlm.language.prompts import caption_prompt, target_text

    model, processor = tiny_model()
    model.train()
    batch = processor([caption_prompt()] * len(images), images, [target_text(c) for c in captions],
                      padding_side='right')
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), processor
