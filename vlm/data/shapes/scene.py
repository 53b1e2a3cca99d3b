"""Random scene layout: which shapes, colours, sizes, positions and z-order; and what stays visible."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from .constants import (
    CATEGORY_NAMES,
    CLASSIFICATION_SIZE_RANGE,
    COLOURS,
    EMPTY_FRACTION,
    INSTANCE_SIZE_RANGE,
    MAX_OBJECTS,
    MIN_VISIBLE_FRACTION,
    MIN_VISIBLE_PIXELS,
)
from .geometry import ShapeObject, shape_mask

COLOUR_JITTER = 15  # +- per channel around the named colour
MAX_TRIES = 20  # placements tried per object before giving it up


@dataclass(frozen=True)
class Scene:
    """Objects in z-order (later ones occlude earlier ones) and `owner` (S, S) int16: the index of the object
    seen at each pixel, -1 for background."""
    objects: List[ShapeObject]
    owner: np.ndarray

    @property
    def image_size(self) -> int:
        return int(self.owner.shape[0])

    def visible_mask(self, index: int) -> np.ndarray:
        """(S, S) bool: the pixels where object `index` is seen."""
        return self.owner == index


class Seen(NamedTuple):
    """What a caption or a question may say about one visible object: category and colour names and the
    centroid (x, y) of its visible mask in pixels."""
    category: str
    colour: str
    x: float
    y: float


def sample_object(rng: np.random.Generator, image_size: int, size_range: Tuple[float, float],
                  category: Optional[str] = None) -> ShapeObject:
    """A random shape lying entirely inside the image; `category` fixed if given."""
    category = category if category is not None else CATEGORY_NAMES[rng.integers(len(CATEGORY_NAMES))]
    colour = list(COLOURS)[rng.integers(len(COLOURS))]
    rgb = np.clip(np.asarray(COLOURS[colour]) + rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, 3), 0, 255)
    size = rng.uniform(*size_range) * image_size
    radius = size / 2
    centre = (rng.uniform(radius, image_size - radius), rng.uniform(radius, image_size - radius))
    return ShapeObject(category, colour, tuple(int(c) for c in rgb), centre, size, rng.uniform(0.0, 360.0))


def _recognisable(owner: np.ndarray, full_areas: Sequence[int]) -> bool:
    """Whether every object keeps >= MIN_VISIBLE_FRACTION of its full area and >= MIN_VISIBLE_PIXELS."""
    visible = np.bincount(owner.ravel() + 1, minlength=len(full_areas) + 1)[1:]
    full = np.asarray(full_areas)
    return bool(np.all((visible >= MIN_VISIBLE_FRACTION * full) & (visible >= MIN_VISIBLE_PIXELS)))


def layout_scene(rng: np.random.Generator, image_size: int) -> Scene:
    """0..MAX_OBJECTS shapes (none with probability EMPTY_FRACTION), each drawn over the previous ones.

    A placement that would leave any object (itself or one it covers) unrecognisable is redrawn; after
    MAX_TRIES failures that object is left out.
    """
    count = 0 if rng.random() < EMPTY_FRACTION else int(rng.integers(1, MAX_OBJECTS + 1))
    objects: List[ShapeObject] = []
    full_areas: List[int] = []
    owner = np.full((image_size, image_size), -1, dtype=np.int16)
    for _ in range(count):
        for _ in range(MAX_TRIES):
            shape = sample_object(rng, image_size, INSTANCE_SIZE_RANGE)
            mask = shape_mask(shape, image_size)
            trial = owner.copy()
            trial[mask] = len(objects)
            if _recognisable(trial, full_areas + [int(mask.sum())]):
                objects.append(shape)
                full_areas.append(int(mask.sum()))
                owner = trial
                break
    return Scene(objects, owner)


def single_object_scene(rng: np.random.Generator, image_size: int, category: str) -> Scene:
    """One large, fully visible shape of `category` (a classification image)."""
    shape = sample_object(rng, image_size, CLASSIFICATION_SIZE_RANGE, category)
    owner = np.where(shape_mask(shape, image_size), 0, -1).astype(np.int16)
    return Scene([shape], owner)


def seen_objects(scene: Scene) -> List[Seen]:
    """The Seen facts of every object, in z-order."""
    seen = []
    for index, shape in enumerate(scene.objects):
        ys, xs = np.nonzero(scene.visible_mask(index))
        seen.append(Seen(shape.category, shape.colour, float(xs.mean()), float(ys.mean())))
    return seen
