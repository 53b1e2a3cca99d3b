"""Caption templates: several differently worded, true descriptions of one image.

Number words ('one'..'five') always give exact counts; 'a' only claims that such an object exists.
"""
from __future__ import annotations

from collections import Counter
from typing import Callable, List, Optional, Sequence

import numpy as np

from .language import counted, join_words
from .relations import left_to_right, region, relation, relation_margin
from .scene import Seen

CAPTIONS_PER_IMAGE = 5
BACKGROUND_WORDS = ('textured', 'noisy')
REGION_PHRASES = {'top': 'at the top', 'bottom': 'at the bottom', 'left': 'on the left', 'right': 'on the right',
                  'center': 'in the center'}  # the corners: 'in the top left corner'
RELATION_PHRASES = {'left of': 'to the left of', 'right of': 'to the right of', 'above': 'above', 'below': 'below'}

Template = Callable[[np.random.Generator, Sequence[Seen], int], Optional[str]]


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    """One of `options`, uniformly."""
    return options[int(rng.integers(len(options)))]


def _counts(rng: np.random.Generator, keys: Sequence[str], noun: Callable[[str], str]) -> str:
    """'two red circles and one blue star': the exact count of every distinct key, in random order."""
    counts = Counter(keys)
    order = [list(counts)[i] for i in rng.permutation(len(counts))]
    return join_words([counted(counts[key], noun(key)) for key in order])


def _inventory(rng: np.random.Generator, objects: Sequence[Seen], image_size: int) -> str:
    """Exact counts of every colour + shape."""
    items = _counts(rng, [f'{o.colour} {o.category}' for o in objects], str)
    verb = 'is' if items.startswith('one ') else 'are'
    return _pick(rng, [f'{counted(len(objects), "shape")}: {items}',
                       f'there {verb} {items} on a {_pick(rng, BACKGROUND_WORDS)} background',
                       f'{items} on a {_pick(rng, BACKGROUND_WORDS)} background'])


def _shape_counts(rng: np.random.Generator, objects: Sequence[Seen], image_size: int) -> str:
    """Exact counts of every shape category."""
    items = _counts(rng, [o.category for o in objects], str)
    return _pick(rng, [f'an image with {items}', f'this picture shows {items}',
                       f'a {_pick(rng, BACKGROUND_WORDS)} background with {items}'])


def _colour_counts(rng: np.random.Generator, objects: Sequence[Seen], image_size: int) -> str:
    """Exact counts of every colour."""
    items = _counts(rng, [o.colour for o in objects], lambda colour: f'{colour} shape')
    return _pick(rng, [f'{items} on a {_pick(rng, BACKGROUND_WORDS)} background', f'the image contains {items}'])


def _total(rng: np.random.Generator, objects: Sequence[Seen], image_size: int) -> str:
    """The exact number of shapes."""
    total = counted(len(objects), 'shape')
    verb = 'is' if len(objects) == 1 else 'are'
    return _pick(rng, [f'{total} on a {_pick(rng, BACKGROUND_WORDS)} background',
                       f'there {verb} {total} in the image',
                       f'a {_pick(rng, BACKGROUND_WORDS)} background with {total}'])


def _left_to_right(rng: np.random.Generator, objects: Sequence[Seen], image_size: int) -> Optional[str]:
    """Every object, ordered by centroid x (only when neighbours are clearly apart)."""
    ordered = left_to_right(objects, relation_margin(image_size)) if len(objects) >= 2 else None
    if ordered is None:
        return None
    items = join_words([f'a {o.colour} {o.category}' for o in ordered])
    return _pick(rng, [f'from left to right: {items}', f'{items}, from left to right'])


def _relation(rng: np.random.Generator, objects: Sequence[Seen], image_size: int) -> Optional[str]:
    """Where one object lies relative to another (a random clearly separated pair)."""
    margin = relation_margin(image_size)
    pairs = [(a, b, rel) for a in objects for b in objects
             if a is not b and (rel := relation(a, b, margin)) is not None]
    if not pairs:
        return None
    a, b, rel = pairs[int(rng.integers(len(pairs)))]
    first, phrase, second = f'a {a.colour} {a.category}', RELATION_PHRASES[rel], f'a {b.colour} {b.category}'
    return _pick(rng, [f'{first} {phrase} {second}', f'{first} is {phrase} {second}',
                       f'there is {first} {phrase} {second}'])


def _region(rng: np.random.Generator, objects: Sequence[Seen], image_size: int) -> Optional[str]:
    """Where one object lies in the image (a random object away from region boundaries)."""
    placed = [(o, where) for o in objects if (where := region(o, image_size)) is not None]
    if not placed:
        return None
    obj, where = placed[int(rng.integers(len(placed)))]
    phrase = f'a {obj.colour} {obj.category} ' + REGION_PHRASES.get(where, f'in the {where} corner')
    return _pick(rng, [f'{phrase} of the image', phrase])


TEMPLATES: List[Template] = [_inventory, _shape_counts, _colour_counts, _total, _left_to_right, _relation, _region]


def _empty(rng: np.random.Generator) -> List[str]:
    """Captions of an image without objects."""
    words = [_pick(rng, BACKGROUND_WORDS) for _ in range(4)]
    return [f'an empty {words[0]} background', f'a {words[1]} background with no shapes',
            'there are no shapes in this image', f'nothing but a {words[2]} background',
            f'an image with no objects, only a {words[3]} background']


def make_captions(rng: np.random.Generator, objects: Sequence[Seen], image_size: int,
                  count: int = CAPTIONS_PER_IMAGE) -> List[str]:
    """Up to `count` (at least 4) distinct true captions, each from a different template, in random order."""
    if not objects:
        candidates = _empty(rng)
    else:
        candidates = [caption for template in TEMPLATES if (caption := template(rng, objects, image_size))]
    return [candidates[i] for i in rng.permutation(len(candidates))[:count]]
