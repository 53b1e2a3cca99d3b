"""Learning curves side by side: validation metrics of several `vlm fit` runs against training images seen and wall
time, as one PNG (matplotlib) and a markdown table (`vlm.evaluation.learning_curves`).

Each run is LABEL=FOLDER, FOLDER a CSVLogger version folder (`metrics.csv` and `config.yaml`, as `vlm fit` writes
them); images seen = step x the datamodule's batch_size (images a step); wall time from `time/wall_s`, which the
`vlm.callbacks.WallClock` callback of the shapes configs logs.

    python -m benchmarks.experiments.learning_curves --out docs/learning_curves.png \\
        --run "VQA, from scratch=runs/shapes_vqa/version_0" --run "VQA, SmolLM2=runs/shapes_vqa_smollm2/version_0" \\
        --metric val/vqa_acc/other --metric val/vqa_acc
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

from vlm.evaluation.learning_curves import plot, read_curves, table


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--run', action='append', required=True, help='LABEL=FOLDER (a CSVLogger version folder)')
    parser.add_argument('--metric', action='append', required=True)
    parser.add_argument('--out', default='docs/learning_curves.png')
    args = parser.parse_args(argv)
    runs = {}
    for spec in args.run:
        label, _, folder = spec.partition('=')
        runs[label] = Path(folder)
    curves = read_curves(runs, args.metric)
    plot(curves, Path(args.out))
    print(table(curves))
    print(f'\nwrote {args.out}')


if __name__ == '__main__':
    main()
