"""COCO box and mask mAP as a torchmetrics `Metric`: per-image detections in, the 12 COCOeval stats of each IoU type
out, scored against the split's COCO annotation JSON by pycocotools (the reference) or faster-coco-eval."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import torch

from vlm.io.json_files import read_json

from .coco_eval import BACKENDS, evaluate_coco
from .coco_results import detections_to_coco_results
from .gathered_metric import GatheredRecordsMetric


class CocoMeanAveragePrecision(GatheredRecordsMetric):
    """update(image_ids, detections): detections[i] = {'boxes' (N, 4) XYXY, 'scores' (N,), 'labels' (N,)
    contiguous, 'masks' (N, H, W) bool (for 'segm')}. compute() -> {'scores': {iou_type: {'stats': the 12 COCOeval
    stats by name, 'table': the summary table}}, 'results': the COCO results records, 'images': how many images},
    over every process's images, against `ground_truth` (a COCO JSON path or dataset) restricted to the images
    evaluated (all of them unless batches were limited). category_ids[label] is the COCO category id of a label
    (index 0, the background, unused)."""

    def __init__(self, ground_truth: Union[str, Path, dict], category_ids: Sequence[int],
                 iou_types: Sequence[str] = ('bbox',), backend: str = 'pycocotools', **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.ground_truth = ground_truth
        self.category_ids = torch.as_tensor(list(category_ids), dtype=torch.long)
        self.iou_types, self.backend = tuple(iou_types), backend
        self._dataset: Optional[dict] = None

    def update(self, image_ids: Sequence[int], detections: Sequence[Dict[str, torch.Tensor]]) -> None:
        for image_id, found in zip(image_ids, detections):
            masks = [found['masks']] if 'segm' in self.iou_types else None
            records = detections_to_coco_results([int(image_id)], [found['boxes']], [found['scores']],
                                                 [found['labels']], self.category_ids, masks)
            self.records.append((int(image_id), records))

    def compute(self) -> Dict[str, Any]:
        per_image = self.unique_records()
        if self._dataset is None:
            self._dataset = (read_json(self.ground_truth, 'ground-truth')
                             if isinstance(self.ground_truth, (str, Path)) else self.ground_truth)
        gt = self._dataset
        subset = {**gt, 'images': [image for image in gt['images'] if image['id'] in per_image],
                  'annotations': [ann for ann in gt.get('annotations', []) if ann['image_id'] in per_image]}
        results = [record for _, records in per_image.values() for record in records]
        scored = {iou_type: evaluate_coco(subset, results, iou_type=iou_type, backend=self.backend)
                  for iou_type in self.iou_types}
        return {'scores': {iou_type: {'stats': stats.as_dict(), 'table': stats.table}
                           for iou_type, stats in scored.items()},
                'results': results, 'images': len(per_image)}
