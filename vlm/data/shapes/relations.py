"""Where visible objects lie, relative to each other and to the image; stated only when unambiguous."""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence

from .scene import Seen

RELATION_MARGIN = 0.08  # centroids must differ by more than this fraction of the image side (10 px at 128 px)

# sort keys: the smallest key is furthest to that side
SIDE_KEYS: Dict[str, Callable[[Seen], float]] = {
    'left': lambda o: o.x, 'right': lambda o: -o.x, 'top': lambda o: o.y, 'bottom': lambda o: -o.y,
}


def relation_margin(image_size: int) -> float:
    """The centroid offset (pixels) above which a relation is stated."""
    return RELATION_MARGIN * image_size


def relation(a: Seen, b: Seen, margin: float) -> Optional[str]:
    """Where `a` lies relative to `b` ('left of', 'right of', 'above', 'below') along the axis on which their
    centroids differ more; None unless that difference exceeds `margin`."""
    dx, dy = a.x - b.x, a.y - b.y
    if max(abs(dx), abs(dy)) <= margin:
        return None
    if abs(dx) >= abs(dy):
        return 'left of' if dx < 0 else 'right of'
    return 'above' if dy < 0 else 'below'


def extreme(objects: Sequence[Seen], side: str, margin: float) -> Optional[Seen]:
    """The object furthest to `side` ('left', 'right', 'top', 'bottom') if at least two objects are given and
    it is more than `margin` further than every other; else None."""
    key = SIDE_KEYS[side]
    ordered = sorted(objects, key=key)
    if len(ordered) >= 2 and key(ordered[1]) - key(ordered[0]) > margin:
        return ordered[0]
    return None


def left_to_right(objects: Sequence[Seen], margin: float) -> Optional[List[Seen]]:
    """The objects sorted by centroid x if neighbours are more than `margin` apart; else None."""
    ordered = sorted(objects, key=lambda o: o.x)
    if all(b.x - a.x > margin for a, b in zip(ordered, ordered[1:])):
        return ordered
    return None


def _third(fraction: float, names: Sequence[str]) -> Optional[str]:
    """names[0] below 0.3, names[1] within 0.37..0.63, names[2] above 0.7, None near the boundaries."""
    if fraction < 0.3:
        return names[0]
    if 0.37 < fraction < 0.63:
        return names[1]
    return names[2] if fraction > 0.7 else None


def region(obj: Seen, image_size: int) -> Optional[str]:
    """Where in the image the object's centroid lies: 'top left', 'top', 'top right', 'left', 'center', ...,
    'bottom right'; None when it lies near a boundary between these parts."""
    column = _third((obj.x + 0.5) / image_size, ('left', 'middle', 'right'))
    row = _third((obj.y + 0.5) / image_size, ('top', 'middle', 'bottom'))
    if column is None or row is None:
        return None
    if row == column == 'middle':
        return 'center'
    return ' '.join(word for word in (row, column) if word != 'middle')
