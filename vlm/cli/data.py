"""`vlm data ...`: dataset tools. `vlm data shapes --out data/shapes` generates the embedded shapes dataset."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import List


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='vlm data', description='Generate datasets.')
    commands = parser.add_subparsers(dest='command', required=True)
    shapes = commands.add_parser(
        'shapes', help='generate the synthetic shapes dataset (COCO, VQAv2, ImageNet and label-map formats)')
    shapes.add_argument('--out', type=Path, required=True, help='output directory, e.g. data/shapes')
    shapes.add_argument('--train-images', type=int, default=2000, help='instance images in train (default 2000)')
    shapes.add_argument('--val-images', type=int, default=300, help='instance images in val (default 300)')
    shapes.add_argument('--image-size', type=int, default=128, help='instance image side in pixels (default 128)')
    shapes.add_argument('--classification-train-per-class', type=int, default=500,
                        help='classification train images per class (default 500)')
    shapes.add_argument('--classification-val-per-class', type=int, default=50,
                        help='classification val images per class (default 50)')
    shapes.add_argument('--classification-image-size', type=int, default=64,
                        help='classification image side in pixels (default 64)')
    shapes.add_argument('--seed', type=int, default=0, help='random seed (default 0)')
    shapes.add_argument('--workers', type=int, default=2, help='worker processes (default 2)')
    shapes.add_argument('--force', action='store_true', help='replace an existing output directory')
    return parser


def _disk_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob('*') if path.is_file())


def _shapes(args: argparse.Namespace) -> int:
    from vlm.data.shapes import META_FILE, generate_shapes  # imported here so `vlm data --help` stays fast
    from vlm.io.progress import progress_bar

    start = time.perf_counter()
    try:
        with progress_bar(f'generating {args.out}') as advance:
            out = generate_shapes(
                args.out, train_images=args.train_images, val_images=args.val_images, image_size=args.image_size,
                seed=args.seed, classification_images_per_class=args.classification_train_per_class,
                classification_val_images_per_class=args.classification_val_per_class,
                classification_image_size=args.classification_image_size, workers=args.workers, force=args.force,
                progress=advance)
    except (FileExistsError, ValueError) as error:
        print(f'vlm data shapes: {error}', file=sys.stderr)
        return 1
    seconds = time.perf_counter() - start
    meta = json.loads((out / META_FILE).read_text())
    print(f'wrote {out} in {seconds:.1f} s ({_disk_bytes(out) / 1e6:.1f} MB)')
    for split, counts in meta['counts'].items():
        print(f"  {split:<5} {counts['images']} images of {meta['image_size']}px ({counts['empty_images']} empty), "
              f"{counts['annotations']} objects, {counts['captions']} captions, {counts['questions']} questions")
    classification = meta['classification']
    print(f"  classification: {len(classification['classes'])} classes x ({classification['train_per_class']} "
          f"train + {classification['val_per_class']} val) images of {classification['image_size']}px")
    return 0


def main(argv: List[str]) -> int:
    """Run `vlm data <command>`; return the exit status."""
    args = _parser().parse_args(argv)
    return _shapes(args)
