"""Learning curves side by side: validation metrics of several `vlm fit` runs against training images seen and wall
time, as one PNG (matplotlib) and a markdown table.

Each run is LABEL=FOLDER, FOLDER a CSVLogger version folder (`metrics.csv` and `config.yaml`, as `vlm fit` writes
them); images seen = step x the datamodule's batch_size (images a step); wall time from `time/wall_s`, which the
`vlm.callbacks.WallClock` callback of the shapes configs logs.

    python benchmarks/learning_curves.py --out docs/learning_curves.png \\
        --run "VQA, from scratch=runs/shapes_vqa/version_0" --run "VQA, SmolLM2=runs/shapes_vqa_smollm2/version_0" \\
        --metric val/vqa_acc/other --metric val/vqa_acc
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import yaml

Point = Tuple[int, float, float]  # (images seen, wall seconds, value)
CHANCE = {'val/vqa_acc/other': 1 / 6, 'val/vqa_acc/yes/no': 1 / 2}  # drawn as a dashed line: one of 6 colours / shapes


def read_curve(folder: Path, metric: str) -> List[Point]:
    """(images seen, wall seconds, value) at every validation of the run that logged `metric`."""
    config = yaml.safe_load((folder / 'config.yaml').read_text())
    batch = int(config['data']['init_args']['batch_size'])
    rows = list(csv.DictReader(open(folder / 'metrics.csv')))
    points = []
    for row in rows:
        if row.get(metric) not in (None, ''):
            wall = row.get('time/wall_s') or ''
            points.append(((int(row['step']) + 1) * batch, float(wall) if wall else float('nan'), float(row[metric])))
    return points


def plot(curves: Dict[str, Dict[str, List[Point]]], out: Path) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    metrics = sorted({metric for per_run in curves.values() for metric in per_run})
    figure, axes = plt.subplots(len(metrics), 2, figsize=(11, 3.6 * len(metrics)), squeeze=False)
    for row, metric in enumerate(metrics):
        for label, per_run in curves.items():
            points = per_run.get(metric, [])
            if not points:
                continue
            seen, wall, value = zip(*points)
            axes[row][0].plot(seen, value, marker='o', label=label)
            axes[row][1].plot([w / 60 for w in wall], value, marker='o', label=label)
        for column, xlabel in enumerate(('training images seen', 'wall time (min, 2 CPU cores)')):
            axes[row][column].set(xlabel=xlabel, ylabel=metric)
            if metric in CHANCE:
                axes[row][column].axhline(CHANCE[metric], color='grey', linestyle='--', linewidth=1)
            axes[row][column].grid(alpha=0.3)
        axes[row][0].legend(fontsize=8)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)


def table(curves: Dict[str, Dict[str, List[Point]]]) -> str:
    lines = ['| run | metric | (images seen, min, value) at each validation |', '| --- | --- | --- |']
    for label, per_run in curves.items():
        for metric, points in per_run.items():
            cells = ', '.join(f'({seen}, {wall / 60:.1f}, {value:.3f})' for seen, wall, value in points)
            lines.append(f'| {label} | {metric} | {cells} |')
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--run', action='append', required=True, help='LABEL=FOLDER (a CSVLogger version folder)')
    parser.add_argument('--metric', action='append', required=True)
    parser.add_argument('--out', default='docs/learning_curves.png')
    args = parser.parse_args(argv)
    curves: Dict[str, Dict[str, List[Point]]] = {}
    for spec in args.run:
        label, _, folder = spec.partition('=')
        curves[label] = {metric: read_curve(Path(folder), metric) for metric in args.metric}
        curves[label] = {metric: points for metric, points in curves[label].items() if points}
    plot(curves, Path(args.out))
    print(table(curves))
    print(f'\nwrote {args.out}')


if __name__ == '__main__':
    main()
