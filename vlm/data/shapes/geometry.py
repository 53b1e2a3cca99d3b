"""One shape: its description and its hard-edged (not anti-aliased) full mask."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np
from PIL import Image, ImageDraw


@dataclass(frozen=True)
class ShapeObject:
    """A shape to draw: category and colour names, its jittered RGB, centre (x, y) in pixels, size (the
    diameter of its circumscribed circle, pixels) and rotation (degrees, counter-clockwise)."""
    category: str
    colour: str
    rgb: Tuple[int, int, int]
    centre: Tuple[float, float]
    size: float
    rotation: float


def _regular(count: int, radii: Tuple[float, ...], start_degrees: float = -90.0) -> np.ndarray:
    """(count, 2) unit vertices at equal angles, radii cycling through `radii`."""
    angles = np.deg2rad(start_degrees + np.arange(count) * 360.0 / count)
    r = np.resize(np.asarray(radii, dtype=np.float64), count)
    return np.stack([r * np.cos(angles), r * np.sin(angles)], axis=1)


def _plus(w: float) -> np.ndarray:
    """(12, 2) vertices of a plus sign with arms of half-width `w`, scaled into the unit circle."""
    points = [(w, 1), (w, w), (1, w), (1, -w), (w, -w), (w, -1),
              (-w, -1), (-w, -w), (-1, -w), (-1, w), (-w, w), (-w, 1)]
    return np.asarray(points, dtype=np.float64) / math.hypot(1.0, w)


# unit polygons (circumradius 1); circle and ring are drawn as ellipses
POLYGONS: Dict[str, np.ndarray] = {
    'square': _regular(4, (1.0,), start_degrees=45.0),
    'triangle': _regular(3, (1.0,)),
    'star': _regular(10, (1.0, 0.45)),
    'cross': _plus(0.3),
}
RING_INNER_RADIUS = 0.5  # of the outer radius


def shape_mask(shape: ShapeObject, image_size: int) -> np.ndarray:
    """(S, S) bool: the pixels the shape covers when drawn alone, with hard edges."""
    canvas = Image.new('L', (image_size, image_size), 0)
    draw = ImageDraw.Draw(canvas)
    (cx, cy), radius = shape.centre, shape.size / 2
    if shape.category in ('circle', 'ring'):
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=1)
        if shape.category == 'ring':
            inner = radius * RING_INNER_RADIUS
            draw.ellipse((cx - inner, cy - inner, cx + inner, cy + inner), fill=0)
    else:
        theta = math.radians(shape.rotation)
        rotation = np.array([[math.cos(theta), math.sin(theta)], [-math.sin(theta), math.cos(theta)]])
        vertices = POLYGONS[shape.category] @ rotation * radius + np.array([cx, cy])
        draw.polygon([tuple(v) for v in vertices.tolist()], fill=1)
    return np.asarray(canvas, dtype=bool)
