"""How fast a from-scratch Llama decoder learns to answer the shapes VQA questions when the image tokens are ideal:
the decoder's share of the shapes VQA goal, without the encoder's.

Each image becomes 4 x 4 tokens that state exactly which colours and shapes have their centre in that cell
(one-hot counts, read from the generator's scene), through vlm's projector. A `LlamaForCausalLM` (the shapes
configs' size by default, 2 layers) trains on the shapes VQA questions, twice, from the same initial weights on
the same batches, with the image before the question (vlm's prompt, LLaVA's order) and after it:

    image first     (vlm):  <s> <image>*16 Question: {q} Answer:  -> " {a}</s>"
    question first:         <s> Question: {q} <image>*16 Answer:  -> " {a}</s>"

It prints the accuracy of the answer's first token on the val questions (teacher forced) as training goes,
overall and on "what color is the <shape>?" / "what shape is the <colour> object?" (the questions that need the
object named in the question to be found among the image tokens), then the ratio question-first / image-first.

    python -m benchmarks.experiments.vqa_decoder_grounding [--steps 1200] [--eval-every 300] [--batch 40] [--layers 2]
"""
from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path
from typing import Dict, List, Tuple

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from vlm.data import VqaV2, ensure_shapes
from vlm.data.shapes.constants import CATEGORY_NAMES, COLOURS
from vlm.data.shapes.generate import image_rngs
from vlm.data.shapes.paths import image_id, shapes_paths
from vlm.data.shapes.scene import layout_scene, seen_objects
from vlm.language.image_processor import VisionLanguageImageProcessor
from vlm.language.processor import IGNORE_INDEX, VisionLanguageProcessor
from vlm.language.projector import Projector
from vlm.language.prompts import target_text, training_corpus, vqa_prompt
from vlm.language.tokenizer import IMAGE_TOKEN, train_bpe_tokenizer

GRID = 4
FEATURES = len(COLOURS) + len(CATEGORY_NAMES)
OBJECT_QUESTION = re.compile(r'^what (color is the \w+|shape is the \w+ object)\?$')
Example = Tuple[int, str, str]  # image id, question, answer


def object_tokens(split: str, count: int, image_size: int, seed: int) -> Dict[int, torch.Tensor]:
    """image id -> (FEATURES, 4, 4): per cell, how many objects of each colour and each shape are centred there."""
    colours = list(COLOURS)
    grids = {}
    for index in range(count):
        grid = torch.zeros(FEATURES, GRID, GRID)
        for obj in seen_objects(layout_scene(image_rngs(seed, split, index).layout, image_size)):
            row, col = int(obj.y * GRID // image_size), int(obj.x * GRID // image_size)
            grid[colours.index(obj.colour), row, col] += 1
            grid[len(colours) + CATEGORY_NAMES.index(obj.category), row, col] += 1
        grids[image_id(split, index)] = grid
    return grids


def questions(root: Path, split: str) -> List[Example]:
    """(image id, question, answer) of every question of a split, read by vlm's VQAv2 reader."""
    paths = shapes_paths(root, split)
    dataset = VqaV2(paths['images'], paths['vqa_questions'], paths['vqa_annotations'])
    return [(question.image_id, question.question, question.answer)
            for question in map(dataset.question, range(len(dataset.questions)))]


class Learner:
    """Projector + Llama decoder trained on (object tokens, question, answer) with one prompt order."""

    def __init__(self, processor: VisionLanguageProcessor, image_first: bool, layers: int, hidden: int, lr: float) -> None:
        torch.manual_seed(0)
        tokenizer = processor.tokenizer
        self.processor, self.image_first = processor, image_first
        self.decoder = LlamaForCausalLM(LlamaConfig(
            hidden_size=hidden, intermediate_size=3 * hidden, num_hidden_layers=layers, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=256, vocab_size=len(tokenizer), tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id))
        self.projector = Projector(FEATURES, hidden, hidden)
        params = [*self.decoder.parameters(), *self.projector.parameters()]
        self.optimizer = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=0.0)

    def prompt(self, question: str) -> str:
        """vlm's VQA prompt (the image goes first), or the question placed before the image."""
        prompt = vqa_prompt(question)
        return prompt if self.image_first else prompt.replace(' Answer:', f' {IMAGE_TOKEN} Answer:')

    def logits(self, grids: torch.Tensor, batch: List[Example]) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, L, V) logits and (B, L) labels of a batch; grids (B, FEATURES, 4, 4)."""
        encoded = [self.processor.encode(self.prompt(q), True, target_text(a)) for _, q, a in batch]
        length = max(len(ids) for ids, _ in encoded)
        pad = self.processor.tokenizer.pad_token_id
        ids = torch.tensor([i + [pad] * (length - len(i)) for i, _ in encoded])
        labels = torch.tensor([l + [IGNORE_INDEX] * (length - len(l)) for _, l in encoded])
        mask = torch.tensor([[1] * len(i) + [0] * (length - len(i)) for i, _ in encoded])
        embeds = self.decoder.get_input_embeddings()(ids)
        image = ids == self.processor.image_token_id
        embeds = embeds.masked_scatter(image[..., None].expand_as(embeds), self.projector(grids).to(embeds.dtype))
        with torch.autocast('cpu', torch.bfloat16):
            return self.decoder(inputs_embeds=embeds, attention_mask=mask).logits.float(), labels

    def step(self, grids: torch.Tensor, batch: List[Example]) -> float:
        logits, labels = self.logits(grids, batch)
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten())
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        return float(loss.detach())

    @torch.no_grad()
    def accuracy(self, grids: Dict[int, torch.Tensor], examples: List[Example]) -> Tuple[float, float]:
        """First answer token accuracy: all questions, and the object questions."""
        right, kinds = [], []
        for start in range(0, len(examples), 250):
            batch = examples[start:start + 250]
            logits, labels = self.logits(torch.stack([grids[i] for i, _, _ in batch]), batch)
            first = (labels != IGNORE_INDEX).float().argmax(1)  # position of the first target token
            rows = torch.arange(len(batch))
            right += (logits[rows, first - 1].argmax(-1) == labels[rows, first]).tolist()
            kinds += [bool(OBJECT_QUESTION.match(q)) for _, q, _ in batch]
        objects = [r for r, k in zip(right, kinds) if k]
        return sum(right) / len(right), sum(objects) / max(1, len(objects))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--root', default='data/shapes')
    parser.add_argument('--steps', type=int, default=1200)
    parser.add_argument('--eval-every', type=int, default=300)
    parser.add_argument('--batch', type=int, default=40)
    parser.add_argument('--layers', type=int, default=2)
    parser.add_argument('--hidden', type=int, default=256)
    parser.add_argument('--lr', type=float, default=5e-4)
    args = parser.parse_args()
    ensure_shapes(args.root)
    root = Path(args.root)
    meta = json.loads((root / 'shapes_meta.json').read_text())
    grids = {split: object_tokens(split, meta[f'{split}_images'], meta['image_size'], meta['seed'])
             for split in ('train', 'val')}
    train, val = questions(root, 'train'), questions(root, 'val')
    corpus = training_corpus([], [q for _, q, _ in train], [a for _, _, a in train])
    tokenizer = train_bpe_tokenizer(corpus, vocab_size=512)
    processor = VisionLanguageProcessor(VisionLanguageImageProcessor(GRID * 16, 16), tokenizer, 256)  # 16 image tokens
    learners = {'image first': Learner(processor, True, args.layers, args.hidden, args.lr),
                'question first': Learner(processor, False, args.layers, args.hidden, args.lr)}
    order = random.Random(0)
    results: Dict[str, Tuple[float, float]] = {}
    for step in range(1, args.steps + 1):
        batch = order.sample(train, args.batch)
        stacked = torch.stack([grids['train'][i] for i, _, _ in batch])
        for learner in learners.values():
            learner.step(stacked, batch)
        if step % args.eval_every == 0 or step == args.steps:
            for name, learner in learners.items():
                results[name] = learner.accuracy(grids['val'], val)
                print(f'step {step:5d}  {name:14s}  answer accuracy {results[name][0]:.3f}  '
                      f'colour/shape-of-object questions {results[name][1]:.3f}', flush=True)
    first, second = results['image first'], results['question first']
    print(f'question first / image first: answer accuracy {second[0] / max(first[0], 1e-9):.2f}, '
          f'colour/shape-of-object questions {second[1] / max(first[1], 1e-9):.2f}')


if __name__ == '__main__':
    main()
