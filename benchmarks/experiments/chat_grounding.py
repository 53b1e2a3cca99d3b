"""Does a conversation model look at its images? Every assistant turn of the shapes val dialogues answered with the
dialogue's own images, then with another dialogue's (a fixed derangement among dialogues with the same number of
images), given the reference turns before it (as `vlm fit` validates); exact-match accuracy by image count and
by kind of answer (yes/no, number, 'other' = colour or shape, 'which' = first / second / neither).

A model that answers from the text alone scores the same either way.

    python -m benchmarks.experiments.chat_grounding --model models/shapes_conversations [--limit 200] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional

from vlm.data import ensure_shapes, read_conversations
from vlm.evaluation.vqa_accuracy import normalize_answer
from vlm.language.records import ConversationRecord
from vlm.language.inference import VisionLanguagePredictor

SHAPES = Path('data/shapes')


def answer_kind(reference: str) -> str:
    if reference in ('yes', 'no'):
        return 'yes/no'
    if reference.isdigit():
        return 'number'
    return 'which' if reference in ('first', 'second', 'neither') else 'other'


def grounding(predictor: VisionLanguagePredictor, conversation_file: Path, images_dir: Path,
              limit: Optional[int] = None, max_new_tokens: int = 4) -> Dict[str, Dict[str, float]]:
    """{'true': accuracies, 'shuffled': accuracies, 'difference': true - shuffled}, keyed 'all',
    '<n>_images' and each answer kind."""
    dialogues = read_conversations(conversation_file, images_dir)[:limit]
    by_count: Dict[int, List[int]] = defaultdict(list)
    for k, dialogue in enumerate(dialogues):
        by_count[len(dialogue.images)].append(k)
    other = {}
    for indices in by_count.values():  # each dialogue -> another with as many images
        shift = max(len(indices) // 2, 1)
        other.update({k: indices[(j + shift) % len(indices)] for j, k in enumerate(indices)})
    scores = {}
    for name, source in (('true', lambda k: k), ('shuffled', other.__getitem__)):
        prompts = [prompt for k, dialogue in enumerate(dialogues) for prompt in ConversationRecord(
            [str(p) for p in dialogues[source(k)].images], dialogue.messages, dialogue.id).prompts()]
        texts = predictor.reply([prompt.messages for prompt in prompts], [prompt.images for prompt in prompts],
                                max_new_tokens=max_new_tokens)
        hits: Dict[str, List[bool]] = defaultdict(list)
        for text, target in zip(texts, [prompt.reference for prompt in prompts]):
            hit = normalize_answer(text) == normalize_answer(target.reference)
            for key in ('all', f"{target.images}_images", answer_kind(target.reference)):
                hits[key].append(hit)
        scores[name] = {key: sum(values) / len(values) for key, values in sorted(hits.items())}
    scores['difference'] = {key: scores['true'][key] - scores['shuffled'][key] for key in scores['true']}
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', required=True, help='a folder written by `vlm export`')
    parser.add_argument('--conversations', type=Path, default=SHAPES / 'annotations' / 'conversations_val.json')
    parser.add_argument('--images', type=Path, default=SHAPES / 'images' / 'val')
    parser.add_argument('--limit', type=int, default=None, help='the first N dialogues only')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--json', type=Path, default=None)
    args = parser.parse_args()
    if args.conversations.is_relative_to(SHAPES):
        ensure_shapes(SHAPES)
    predictor = VisionLanguagePredictor.from_pretrained(args.model, batch_size=args.batch_size)
    scores = grounding(predictor, args.conversations, args.images, args.limit)
    keys = list(scores['true'])
    print(f"{'':<11}" + ''.join(f'{key:>10}' for key in keys))
    for name, values in scores.items():
        print(f'{name:<11}' + ''.join(f'{values[key]:>10.3f}' for key in keys))
    if args.json:
        args.json.write_text(json.dumps(scores, indent=2))


if __name__ == '__main__':
    main()
