"""Collecting Python objects (predictions keyed by image or question id) from every rank."""
from __future__ import annotations

from typing import List, TypeVar

import torch.distributed as dist

T = TypeVar('T')


def gather_objects(obj: T) -> List[T]:
    """Every rank's `obj`, in rank order (`all_gather_object`); `[obj]` when not running distributed."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return [obj]
    gathered: List[T] = [None] * dist.get_world_size()  # type: ignore[list-item]
    dist.all_gather_object(gathered, obj)
    return gathered
