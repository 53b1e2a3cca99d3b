"""VQA question templates: counting, colour, shape, yes/no and position questions with their true answers.

A question that would be ambiguous for the image (two triangles for 'what color is the triangle?', centroids
too close for 'left of') is not asked.
"""
from __future__ import annotations

from collections import Counter
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from .constants import CATEGORY_NAMES, COLOURS
from .language import plural
from .relations import extreme, relation_margin
from .scene import Seen

QUESTIONS_PER_IMAGE = 5
PRESENT_PROBABILITY = 0.5  # how often an existence / count question asks about something in the image
POSITION_QUESTIONS = {'left': 'on the left', 'right': 'on the right', 'top': 'at the top', 'bottom': 'at the bottom'}
EXTREME_WORDS = {'left': 'leftmost', 'right': 'rightmost', 'top': 'topmost', 'bottom': 'bottommost'}
AXIS_QUESTIONS = {'x': ('left of', 'right of'), 'y': ('above', 'below')}  # (offset < 0, offset > 0)


class QA(NamedTuple):
    """One question with its answer, VQAv2 question_type and answer_type ('yes/no', 'number' or 'other')."""
    question: str
    answer: str
    question_type: str
    answer_type: str


Asker = Callable[[np.random.Generator, Sequence[Seen], int], Optional[QA]]


def _choose(rng: np.random.Generator, present: Sequence, absent: Sequence):
    """A present item with probability PRESENT_PROBABILITY (when both kinds exist), else an absent one."""
    pool = present if present and (not absent or rng.random() < PRESENT_PROBABILITY) else absent
    return pool[int(rng.integers(len(pool)))]


def _yes_no(value: bool) -> str:
    return 'yes' if value else 'no'


def _count_all(rng: np.random.Generator, objects: Sequence[Seen], image_size: int) -> QA:
    return QA('how many shapes are there?', str(len(objects)), 'how many', 'number')


def _count_colour(rng: np.random.Generator, objects: Sequence[Seen], image_size: int) -> QA:
    present = sorted({o.colour for o in objects})
    colour = _choose(rng, present, [c for c in COLOURS if c not in present])
    count = sum(o.colour == colour for o in objects)
    return QA(f'how many {colour} shapes are there?', str(count), 'how many', 'number')


def _count_category(rng: np.random.Generator, objects: Sequence[Seen], image_size: int) -> QA:
    present = sorted({o.category for o in objects})
    category = _choose(rng, present, [c for c in CATEGORY_NAMES if c not in present])
    count = sum(o.category == category for o in objects)
    return QA(f'how many {plural(category)} are there?', str(count), 'how many', 'number')


def _colour_of_shape(rng: np.random.Generator, objects: Sequence[Seen], image_size: int) -> Optional[QA]:
    counts = Counter(o.category for o in objects)
    single = [o for o in objects if counts[o.category] == 1]
    if not single:
        return None
    obj = single[int(rng.integers(len(single)))]
    return QA(f'what color is the {obj.category}?', obj.colour, 'what color is the', 'other')


def _shape_of_colour(rng: np.random.Generator, objects: Sequence[Seen], image_size: int) -> Optional[QA]:
    counts = Counter(o.colour for o in objects)
    single = [o for o in objects if counts[o.colour] == 1]
    if not single:
        return None
    obj = single[int(rng.integers(len(single)))]
    return QA(f'what shape is the {obj.colour} object?', obj.category, 'what shape is the', 'other')


def _shape_exists(rng: np.random.Generator, objects: Sequence[Seen], image_size: int) -> QA:
    present = sorted({o.category for o in objects})
    category = _choose(rng, present, [c for c in CATEGORY_NAMES if c not in present])
    return QA(f'is there a {category}?', _yes_no(category in present), 'is there a', 'yes/no')


def _combination_exists(rng: np.random.Generator, objects: Sequence[Seen], image_size: int) -> QA:
    """'is there a green square?'; absent combinations share a colour or a shape with the image if possible."""
    present = sorted({(o.colour, o.category) for o in objects})
    absent = [(c, s) for c in COLOURS for s in CATEGORY_NAMES if (c, s) not in present]
    near_misses = [(c, s) for c, s in absent if any(c == pc or s == ps for pc, ps in present)]
    colour, category = _choose(rng, present, near_misses or absent)
    return QA(f'is there a {colour} {category}?', _yes_no((colour, category) in present), 'is there a', 'yes/no')


def _relation(rng: np.random.Generator, objects: Sequence[Seen], image_size: int) -> Optional[QA]:
    """'is the red circle left of the blue square?' for two objects whose colour + shape is unique and whose
    centroids differ by more than the relation margin on the asked axis."""
    counts = Counter((o.colour, o.category) for o in objects)
    unique = [o for o in objects if counts[(o.colour, o.category)] == 1]
    margin = relation_margin(image_size)
    options: List[Tuple[Seen, Seen, str, float]] = []
    for a in unique:
        for b in unique:
            for axis, offset in (('x', a.x - b.x), ('y', a.y - b.y)):
                if a is not b and abs(offset) > margin:
                    options.append((a, b, axis, offset))
    if not options:
        return None
    a, b, axis, offset = options[int(rng.integers(len(options)))]
    asked = AXIS_QUESTIONS[axis][int(rng.integers(2))]
    truth = AXIS_QUESTIONS[axis][0 if offset < 0 else 1]
    question = f'is the {a.colour} {a.category} {asked} the {b.colour} {b.category}?'
    return QA(question, _yes_no(asked == truth), 'is the', 'yes/no')


def _position(rng: np.random.Generator, objects: Sequence[Seen], image_size: int) -> Optional[QA]:
    """'what shape is on the left?' (two objects) or 'what color is the topmost shape?' (two or more), when
    that object is clearly further to that side than every other."""
    margin = relation_margin(image_size)
    sides = [(side, obj) for side in POSITION_QUESTIONS if (obj := extreme(objects, side, margin)) is not None]
    if not sides:
        return None
    side, obj = sides[int(rng.integers(len(sides)))]
    if len(objects) == 2 and rng.random() < 0.5:
        return QA(f'what shape is {POSITION_QUESTIONS[side]}?', obj.category, 'what shape is', 'other')
    return QA(f'what color is the {EXTREME_WORDS[side]} shape?', obj.colour, 'what color is the', 'other')


ASKERS: List[Asker] = [_count_all, _count_colour, _count_category, _colour_of_shape, _shape_of_colour,
                       _shape_exists, _combination_exists, _relation, _position]


def make_questions(rng: np.random.Generator, objects: Sequence[Seen], image_size: int,
                   count: int = QUESTIONS_PER_IMAGE) -> List[QA]:
    """`count` (at most 9) questions of different kinds, in random order; five kinds can always be asked."""
    questions: List[QA] = []
    for index in rng.permutation(len(ASKERS)):
        qa = ASKERS[index](rng, objects, image_size)
        if qa is not None:
            questions.append(qa)
        if len(questions) == count:
            break
    return questions
