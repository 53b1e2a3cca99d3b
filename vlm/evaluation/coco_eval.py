"""COCO mAP (the 12 standard COCOeval stats) of a results list, by pycocotools or faster-coco-eval.

Both backends get the same checked inputs; faster-coco-eval (the `eval` extra) runs the per-image matching and
accumulation in C++, about 5x faster. Their AR stats are identical; AP stats can differ by ~1e-17 (below
1e-15, invisible in the table): pycocotools computes precision as tp / (tp + fp + 2^-52), so a precision of 1/1
comes out as 1 - 2^-52, and faster-coco-eval's C++ as tp / (tp + fp); none of its options changes that.
Nothing is printed: the standard summary table is returned in `CocoStats.table`.
"""
from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from vlm.data.coco_json import bbox_problem
from vlm.io.json_files import read_json

from .choices import BACKENDS
from .coco_results import IOU_TYPES, CocoEvalError, is_finite_number, is_integer, validate_results

# (precision or recall, IoU threshold, area range, maxDets) of each stat, in COCOeval.summarize() order
_SUMMARY_ROWS = (
    (True, None, 'all', 100), (True, 0.5, 'all', 100), (True, 0.75, 'all', 100),
    (True, None, 'small', 100), (True, None, 'medium', 100), (True, None, 'large', 100),
    (False, None, 'all', 1), (False, None, 'all', 10), (False, None, 'all', 100),
    (False, None, 'small', 100), (False, None, 'medium', 100), (False, None, 'large', 100),
)


class CocoGroundTruthError(CocoEvalError):
    """A ground-truth dataset the evaluation cannot use."""


@dataclass(frozen=True)
class CocoStats:
    """The 12 COCOeval stats (-1 where undefined: no ground truth in that area range) and the summary table."""

    AP: float
    AP50: float
    AP75: float
    APs: float
    APm: float
    APl: float
    AR1: float
    AR10: float
    AR100: float
    ARs: float
    ARm: float
    ARl: float
    table: str

    @classmethod
    def of(cls, values: Sequence[float], table: str | None = None) -> CocoStats:
        """Stats from the 12 values in `STAT_NAMES` order; the table is formatted from them when not given."""
        values = [float(v) for v in values]
        if len(values) != len(STAT_NAMES):
            raise ValueError(f"expected {len(STAT_NAMES)} values, got {len(values)}")
        return cls(*values, table=format_table(values) if table is None else table)

    def as_dict(self) -> dict[str, float]:
        """{'AP': ..., 'AP50': ..., ...}: the 12 stats, without the table."""
        return {name: value for name, value in asdict(self).items() if name in STAT_NAMES}


STAT_NAMES = tuple(field.name for field in fields(CocoStats) if field.name != 'table')


def format_table(values: Sequence[float]) -> str:
    """The table COCOeval.summarize() prints for these 12 values."""
    lines = []
    for (precision, iou, area, max_dets), value in zip(_SUMMARY_ROWS, values):
        title, kind = ('Average Precision', '(AP)') if precision else ('Average Recall', '(AR)')
        iou_text = '0.50:0.95' if iou is None else f"{iou:0.2f}"
        lines.append(f" {title:<18} {kind} @[ IoU={iou_text:<9} | area={area:>6s} | maxDets={max_dets:>3d} ]"
                     f" = {value:0.3f}")
    return '\n'.join(lines) + '\n'


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise CocoGroundTruthError(f"ground truth: {message}")


def load_ground_truth(gt: str | Path | dict, iou_type: str = 'bbox') -> dict:
    """A checked private copy of a COCO ground-truth dataset (path or dict) that evaluation may modify.

    Annotations are shallow copies, 'iscrowd' 0 where missing, renumbered 1..N: both libraries read annotation
    id 0 as 'unmatched' and collapse duplicate ids, and only use the ids to mark matches.
    """
    dataset = read_json(gt, 'ground-truth') if isinstance(gt, (str, Path)) else gt
    _check(isinstance(dataset, dict), f"must be a COCO dataset (a JSON object), got {type(dataset).__name__}")
    images, categories = dataset.get('images'), dataset.get('categories')
    annotations = dataset.get('annotations', [])
    for key, value in (('images', images), ('categories', categories), ('annotations', annotations)):
        _check(isinstance(value, list) and all(isinstance(item, dict) for item in value),
               f"'{key}' must be a list of objects")
    image_ids, category_ids = [image.get('id') for image in images], [category.get('id') for category in categories]
    for kind, ids in (('image', image_ids), ('category', category_ids)):
        _check(all(map(is_integer, ids)) and len(set(ids)) == len(ids), f"{kind} ids must be unique integers")
    if iou_type == 'segm':
        _check(all(is_integer(image.get('height')) and is_integer(image.get('width')) for image in images),
               "every image needs an integer 'height' and 'width' for segm evaluation")
    geometry, known_images, known_categories = ('bbox' if iou_type == 'bbox' else 'segmentation', set(image_ids),
                                                set(category_ids))
    sizes = {image.get('id'): (image.get('width'), image.get('height')) for image in images}
    copies = []
    for index, annotation in enumerate(annotations, 1):
        where = f"annotations[{index - 1}]"
        image_id, category_id = annotation.get('image_id'), annotation.get('category_id')
        _check(is_integer(image_id) and image_id in known_images, f"{where}: 'image_id' is not the id of an image")
        _check(is_integer(category_id) and category_id in known_categories,
               f"{where}: 'category_id' is not a category id")
        _check(is_finite_number(annotation.get('area')), f"{where}: 'area' must be a finite number")
        _check(geometry in annotation, f"{where}: '{geometry}' is missing")
        if 'bbox' in annotation:  # the datasets' own check (vlm.data.coco_json.bbox_problem)
            size = sizes[image_id]
            problem = bbox_problem(annotation['bbox'], size[0] or math.inf, size[1] or math.inf)
            _check(problem is None, f"{where}: 'bbox' {problem}")
        copies.append({'iscrowd': 0, **annotation, 'id': index})
    return {**dataset, 'images': list(images), 'categories': list(categories), 'annotations': copies}


def _discard(*_: Any, **__: Any) -> None:
    """A print function that prints nothing."""


Progress = Callable[[int, int], None]  # progress(stages done, stages in all)
STAGES = 4  # ground truth read, predictions checked, matched (evaluate), accumulated


def _run_pycocotools(gt: dict, results: list[dict], iou_type: str, progress: Progress) -> tuple[np.ndarray, str]:
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(results), iou_type)
        evaluator.evaluate()
        progress(3, STAGES)
        evaluator.accumulate()
    table = io.StringIO()
    with contextlib.redirect_stdout(table):
        evaluator.summarize()
    return evaluator.stats, table.getvalue()


def _run_faster_coco_eval(gt: dict, results: list[dict], iou_type: str, progress: Progress
                          ) -> tuple[np.ndarray, str]:
    try:
        from faster_coco_eval import COCO as FastCOCO
        from faster_coco_eval import COCOeval_faster
    except ImportError:
        raise CocoEvalError("backend 'faster-coco-eval' needs the faster-coco-eval package "
                            "(pip install 'vlm[eval]')") from None
    coco_gt = FastCOCO(gt)  # logs at debug level only
    evaluator = COCOeval_faster(coco_gt, coco_gt.loadRes(results), iou_type, print_function=_discard)
    evaluator.evaluate()
    progress(3, STAGES)
    evaluator.accumulate()
    lines: list[str] = []
    evaluator.print_function = lines.append
    evaluator.summarize()
    # summarize() adds AR@0.5 and AR@0.75 after the standard 12 rows; the table keeps the standard ones
    return evaluator.stats[:len(STAT_NAMES)], '\n'.join(lines[:len(STAT_NAMES)]) + '\n'


_RUNNERS: dict[str, Callable[[dict, list[dict], str, Progress], tuple[np.ndarray, str]]] = {
    'pycocotools': _run_pycocotools, 'faster-coco-eval': _run_faster_coco_eval}


def evaluate_coco(gt: str | Path | dict, predictions: str | Path | list[dict], iou_type: str = 'bbox',
                  backend: str = 'pycocotools', progress: Progress | None = None) -> CocoStats:
    """COCO mAP of `predictions` (a results list or its JSON file) against `gt` (a dataset or its JSON file).

    Predictions are checked first (`CocoResultsError` names the bad record and field). No predictions give 0.0
    for all 12 stats. A ground truth without annotations gives -1 (undefined) for all 12, as pycocotools does.
    Neither argument is modified. `progress(done, STAGES)` is called as each stage ends (a progress bar).
    """
    progress = progress or _discard
    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type must be one of {IOU_TYPES}, got {iou_type!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    dataset = load_ground_truth(gt, iou_type)
    progress(1, STAGES)
    if isinstance(predictions, (str, Path)):
        predictions = read_json(predictions, 'predictions')
    results = validate_results(predictions, dataset, iou_type)
    progress(2, STAGES)
    if not results:  # pycocotools' loadRes([]) raises IndexError; COCO convention: no detections, AP 0
        progress(STAGES, STAGES)
        return CocoStats.of([0.0] * len(STAT_NAMES))
    values, table = _RUNNERS[backend](dataset, results, iou_type, progress)
    progress(STAGES, STAGES)
    return CocoStats.of(values, table)
