"""The shapes conversation file in LLaVA's format: each image's questions as one multi-turn dialogue, and
two-image dialogues that compare a pair of images ("which of the two images has more stars?").

A two-image dialogue asks which image has more of a shape present in at least one of them ('first', 'second' or
'neither' when the counts are equal), then how many there are in one of the two, so the answer depends on the
image each `<image>` is bound to.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence

import numpy as np

from .constants import CATEGORY_NAMES
from .language import plural
from .vqa import QA

PAIR_EVERY = 4  # one two-image dialogue per this many images: images (4k, 4k + 1) of a split
ORDINALS = ('first', 'second')


def _turns(pairs: Sequence[tuple], images: int) -> List[Dict[str, str]]:
    """LLaVA turns from (question, answer) pairs; the `<image>` placeholders open the first human turn."""
    turns: List[Dict[str, str]] = []
    for index, (question, answer) in enumerate(pairs):
        prefix = '<image>\n' * images if index == 0 else ''
        turns += [{'from': 'human', 'value': prefix + question}, {'from': 'gpt', 'value': answer}]
    return turns


def image_dialogue(image_id: int, file_name: str, questions: Sequence[QA]) -> Dict[str, Any]:
    """One image's questions, in their (random) generated order, as one dialogue."""
    return {'id': f'{image_id:012d}', 'image': file_name,
            'conversations': _turns([(qa.question, qa.answer) for qa in questions], 1)}


def pair_dialogue(rng: np.random.Generator, records: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Two image records (with their 'image' entry and 'counts' by category) -> a comparison dialogue."""
    counts = [record['counts'] for record in records]
    present = [name for name in CATEGORY_NAMES if counts[0].get(name, 0) or counts[1].get(name, 0)]
    category = present[int(rng.integers(len(present)))] if present else CATEGORY_NAMES[0]
    first, second = (count.get(category, 0) for count in counts)
    more = 'first' if first > second else 'second' if second > first else 'neither'
    which = int(rng.integers(2))
    ids = [record['image']['id'] for record in records]
    pairs = [(f'which of the two images has more {plural(category)}?', more),
             (f'how many {plural(category)} are in the {ORDINALS[which]} image?', str((first, second)[which]))]
    return {'id': f'{ids[0]:012d}-{ids[1]:012d}', 'image': [record['image']['file_name'] for record in records],
            'conversations': _turns(pairs, 2)}


def shapes_conversations(records: Sequence[Dict[str, Any]], pair_rng: np.random.Generator) -> List[Dict[str, Any]]:
    """The conversation file of a split: every image's dialogue, then one two-image dialogue per PAIR_EVERY
    images."""
    dialogues = [image_dialogue(r['image']['id'], r['image']['file_name'], r['questions']) for r in records]
    for start in range(0, len(records) - 1, PAIR_EVERY):
        dialogues.append(pair_dialogue(pair_rng, records[start:start + 2]))
    return dialogues
