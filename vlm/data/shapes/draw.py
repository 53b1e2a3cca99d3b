"""Rasterising a scene: a textured background, the shapes' flat colours, sensor noise; and its label map."""
from __future__ import annotations

import numpy as np

from .constants import SEGMENTATION_IDS
from .scene import Scene


def background(rng: np.random.Generator, image_size: int) -> np.ndarray:
    """(S, S, 3) float: a low-saturation grey with a gradient, faint stripes and gaussian noise.

    Channels differ by under ~50 (before noise), far from the saturated object colours.
    """
    coords = (np.arange(image_size, dtype=np.float64) + 0.5) / image_size - 0.5
    xx, yy = np.meshgrid(coords, coords)  # (S, S) each, in [-0.5, 0.5]
    base = rng.uniform(70.0, 185.0) + rng.uniform(-18.0, 18.0, 3)  # (3,)
    angle = rng.uniform(0.0, 2 * np.pi)
    tint = 1.0 + rng.uniform(-0.15, 0.15, 3)  # (3,) nearly the same gradient in every channel
    gradient = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None] * (rng.uniform(-40.0, 40.0) * tint)
    stripe_angle = rng.uniform(0.0, np.pi)
    period = rng.uniform(5.0, 16.0) / image_size
    phase = (np.cos(stripe_angle) * xx + np.sin(stripe_angle) * yy) / period * 2 * np.pi + rng.uniform(0, 2 * np.pi)
    stripes = rng.uniform(2.0, 7.0) * np.sin(phase)[..., None]
    noise = rng.normal(0.0, rng.uniform(3.0, 8.0), (image_size, image_size, 3))
    return base + gradient + stripes + noise


def render(rng: np.random.Generator, scene: Scene) -> np.ndarray:
    """(S, S, 3) uint8 RGB: the background, each visible object pixel in its object's colour, mild noise."""
    image = background(rng, scene.image_size)
    for index, shape in enumerate(scene.objects):
        image[scene.visible_mask(index)] = shape.rgb
    image += rng.normal(0.0, 3.0, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def label_map(scene: Scene) -> np.ndarray:
    """(S, S) uint8: 0 for background, else the segmentation id (1..K) of the object seen there."""
    lookup = np.array([0] + [SEGMENTATION_IDS[shape.category] for shape in scene.objects], dtype=np.uint8)
    return lookup[scene.owner + 1]
