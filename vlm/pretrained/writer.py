"""`write_weights(name, out)`: one of the `SOURCES` into a new folder, written whole or not at all (a hidden
sibling folder renamed into place when complete)."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Dict, Union

from vlm.errors import DataError, InputError

from .dinov2 import write_dinov2
from .smollm2 import write_smollm2
from .sources import SOURCES, PackagedFile, locate

WRITERS: Dict[str, Callable[[Path, Path, PackagedFile], None]] = {
    'smollm2-135m-instruct': write_smollm2,
    'dinov2-small': write_dinov2,
}


def write_weights(name: str, out: Union[str, Path], overwrite: bool = False) -> Path:
    """Write the weights folder `name` (a key of `SOURCES`) at `out`; an existing non-empty `out` is refused
    unless `overwrite`."""
    if name not in SOURCES:
        raise InputError(f'unknown weights {name!r}; known: {", ".join(sorted(SOURCES))}')
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise DataError(out, 'exists and is not empty; give an empty or new folder, or --overwrite')
    source = SOURCES[name]
    path = locate(source)
    staging = out.parent / f'.{out.name}.partial'
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        WRITERS[name](path, staging, source)
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
