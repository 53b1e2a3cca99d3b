"""Writing files byte-for-byte reproducibly, and publishing a finished output directory atomically."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image

from .paths import META_FILE

PNG_COMPRESS_LEVEL = 6


def write_png(path: Path, array: np.ndarray) -> None:
    """Save (H, W, 3) uint8 as RGB or (H, W) uint8 as mode 'L'; no metadata, fixed compression."""
    Image.fromarray(array).save(path, format='PNG', compress_level=PNG_COMPRESS_LEVEL)


def write_json(path: Path, document: Any) -> None:
    """Compact JSON with sorted keys."""
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(document, f, sort_keys=True, separators=(',', ':'))


def _check_target(out: Path, force: bool) -> None:
    """Refuse (FileExistsError) to replace an existing dataset or a non-empty directory unless `force`."""
    if force or not os.path.lexists(out) or (out.is_dir() and not any(out.iterdir())):
        return
    if (out / META_FILE).is_file():
        raise FileExistsError(f'{out} already holds a shapes dataset; use --force (force=True) to replace it')
    raise FileExistsError(f'{out} exists and is not an empty directory; use --force (force=True) to replace it')


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


@contextmanager
def staged_directory(out: Path, force: bool) -> Iterator[Path]:
    """Yield a new temporary sibling of `out` to write into; when the block succeeds it replaces `out`, when it
    raises it is deleted, so `out` is never left half written."""
    _check_target(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f'.{out.name}.partial-', dir=out.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging)
        raise
    os.chmod(staging, 0o755)
    if os.path.lexists(out):
        previous = staging.with_name(staging.name + '-previous')
        os.replace(out, previous)
        os.replace(staging, out)
        _remove(previous)
    else:
        os.replace(staging, out)
