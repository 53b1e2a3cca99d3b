"""Learning curves of `vlm fit` runs: validation metrics against training images seen and wall time, read from
CSVLogger version folders (`metrics.csv` and `config.yaml`, as `vlm fit` writes them), drawn side by side as one
PNG (matplotlib, imported when drawing) and as a markdown table.

Images seen = (step + 1) x the datamodule's batch_size; wall time from `time/wall_s`, which the
`vlm.callbacks.WallClock` callback of the shapes configs logs. The command line:
`python -m benchmarks.experiments.learning_curves`.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Tuple

import yaml

Point = Tuple[int, float, float]  # (images seen, wall seconds, value)
Curves = Dict[str, Dict[str, List[Point]]]  # {run label: {metric: points}}
CHANCE = {'val/vqa_acc/other': 1 / 6, 'val/vqa_acc/yes/no': 1 / 2}  # drawn as a dashed line: one of 6 colours / shapes


def read_curve(folder: Path, metric: str) -> List[Point]:
    """(images seen, wall seconds, value) at every validation of the run that logged `metric`."""
    config = yaml.safe_load((folder / 'config.yaml').read_text())
    batch = int(config['data']['init_args']['batch_size'])
    with open(folder / 'metrics.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    points = []
    for row in rows:
        if row.get(metric) not in (None, ''):
            wall = row.get('time/wall_s') or ''
            points.append(((int(row['step']) + 1) * batch, float(wall) if wall else float('nan'), float(row[metric])))
    return points


def read_curves(runs: Mapping[str, Path], metrics: Sequence[str]) -> Curves:
    """{label: {metric: points}} of every run (label -> version folder), metrics a run never logged left out."""
    curves: Curves = {}
    for label, folder in runs.items():
        per_run = {metric: read_curve(Path(folder), metric) for metric in metrics}
        curves[label] = {metric: points for metric, points in per_run.items() if points}
    return curves


def plot(curves: Curves, out: Path) -> None:
    """One row of two panels per metric (against images seen, against wall minutes), every run a line; a PNG."""
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
    plt.close(figure)


def table(curves: Curves) -> str:
    """A markdown table: one line per (run, metric), the (images seen, minutes, value) of each validation."""
    lines = ['| run | metric | (images seen, min, value) at each validation |', '| --- | --- | --- |']
    for label, per_run in curves.items():
        for metric, points in per_run.items():
            cells = ', '.join(f'({seen}, {wall / 60:.1f}, {value:.3f})' for seen, wall, value in points)
            lines.append(f'| {label} | {metric} | {cells} |')
    return '\n'.join(lines)
