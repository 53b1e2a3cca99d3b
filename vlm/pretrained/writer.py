"""`write_weights(name, out)`: one of the `SOURCES` into a new folder, written whole or not at all (a hidden
sibling folder renamed into place when complete)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Union

from vlm.errors import InputError
from vlm.io.folders import check_output_folder, staged_folder

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
    check_output_folder(out, overwrite)
    source = SOURCES[name]
    path = locate(source)
    with staged_folder(out) as staging:
        WRITERS[name](path, staging, source)
    return out
