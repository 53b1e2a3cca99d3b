"""Output folders written whole or not at all: `vlm export`, `vlm convert` and `vlm weights` write into a hidden
sibling folder and rename it into place once complete, and never delete what they read from."""
from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

from vlm.errors import DataError

PathLike = Union[str, Path]


def check_output_folder(out: PathLike, overwrite: bool, inputs: Sequence[Optional[PathLike]] = ()) -> bool:
    """Refuse an `out` that is not empty unless `overwrite`, and one that holds any of `inputs` (the files or
    folders the command reads: replacing `out` would delete them). Returns whether `out` will be replaced."""
    out = Path(out)
    replace = out.exists() and (not out.is_dir() or any(out.iterdir()))
    if replace and not overwrite:
        raise DataError(out, 'exists and is not empty; give an empty or new folder, or --overwrite')
    for given in inputs:
        if given is not None and out.exists() and Path(given).resolve().is_relative_to(out.resolve()):
            raise DataError(out, f'holds {given}, which this command reads and writing {out} would delete; write to '
                                 'another folder')
    return replace


@contextmanager
def staged_folder(out: PathLike) -> Iterator[Path]:
    """Yield a new hidden folder beside `out` to write into; when the block ends without an error it replaces
    `out` (whatever was there), otherwise it is removed and `out` is left as it was."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f'.{out.name}.', dir=out.parent))
    try:
        yield staging
        if out.is_dir():
            shutil.rmtree(out)
        elif out.exists():
            out.unlink()
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
