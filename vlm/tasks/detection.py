"""Object detection and instance segmentation on the vlm encoder (ViTDet-style), evaluated with COCO mAP."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pycocotools import mask as mask_utils
from torchvision.ops import box_convert

from vlm.drawing import draw_detections, to_uint8
from vlm.evaluation import BACKENDS, detections_to_coco_results
from vlm.evaluation.coco_metric import CocoMeanAveragePrecision
from vlm.models import DEFAULT_LEVELS, build_detector

from .base import CompileOptions, VlmTask
from .interfaces import CocoGroundTruth
from .optimization import DEFAULT_OPTIMIZATION, Optimization

Detections = Dict[str, torch.Tensor]
MASK_THRESHOLD = 0.5


def torchvision_target(target: Dict[str, Any]) -> Dict[str, torch.Tensor]:
    """A datamodule target -> what torchvision's detectors read: boxes (N, 4) XYXY as a plain tensor, labels
    (N,), and masks (N, H, W) uint8 when present."""
    out = {'boxes': target['boxes'].as_subclass(torch.Tensor).float(), 'labels': target['labels']}
    if 'masks' in target:
        out['masks'] = target['masks'].as_subclass(torch.Tensor).to(torch.uint8)
    return out


class ObjectDetector(VlmTask):
    """FCOS, RetinaNet or Mask R-CNN (`vlm.models.build_detector`: torchvision's detectors on a ViTDet backbone).

    num_classes: categories + background (label 0), linked from the datamodule, like `class_names`.
    detector: 'fcos' | 'retinanet' | 'maskrcnn'. model_args: the detector's own settings, the arguments of
    `vlm.models.build_detector` (encoder, encoder_kwargs, encoder_weights: initial encoder weights from any vlm
    checkpoint or weights file, pyramid_channels, pyramid_strides, extra_levels, anchor_scale, min_size / max_size:
    the evaluation resize, score_thresh, detections_per_img, detector_kwargs); a config sets them beside the
    task's (`model.init_args.encoder`, ...). Layer-wise lr decay
    (`optimization.layer_decay`) scales the encoder's lr only; the pyramid and heads get the full lr.
    Validation / test: COCO mAP (`val/AP`, `val/AP50`, ..., and `val/segm_AP`, ... for Mask R-CNN) against the
    split's annotation file (`CocoMeanAveragePrecision`, gathered over processes by torchmetrics), the table
    printed and the results JSON saved in the log dir. Prediction: `coco_results.json` and one PNG per image with
    the detections drawn; items keep each image (uint8) until written.
    """

    monitor = 'val/AP'
    encoder_path = 'model.backbone.encoder'
    default_optimization = replace(DEFAULT_OPTIMIZATION, lr=1e-4, weight_decay=0.1)

    def __init__(
            self,
            num_classes: int,
            class_names: Optional[List[str]] = None,
            detector: str = 'fcos',
            draw_score_thresh: float = 0.3,
            eval_backend: str = 'pycocotools',
            optimization: Optional[Optimization] = None,
            compile_encoder: CompileOptions = False,
            **model_args: Any,
    ) -> None:
        super().__init__(optimization, compile_encoder)
        self.save_task_hyperparameters()
        if detector not in DEFAULT_LEVELS:
            raise ValueError(f"detector must be one of {tuple(DEFAULT_LEVELS)}, got {detector!r}")
        if eval_backend not in BACKENDS:
            raise ValueError(f"eval_backend must be one of {BACKENDS}, got {eval_backend!r}")
        self.model = build_detector(detector, num_classes, **model_args)
        self.iou_types = ('bbox', 'segm') if detector == 'maskrcnn' else ('bbox',)
        self.eval_backend = eval_backend
        self.draw_score_thresh = draw_score_thresh
        self.metrics: Dict[str, CocoMeanAveragePrecision] = {}  # per split, built from the datamodule's files

    # -- steps -----------------------------------------------------------------------------------------------

    def forward(self, images: List[torch.Tensor]) -> List[Detections]:
        """images [(3, Hi, Wi) float in [0, 1]] -> per image {'boxes' (N, 4) XYXY in input pixels, 'scores',
        'labels', and 'masks' (N, 1, Hi, Wi) probabilities for Mask R-CNN} (in eval mode)."""
        return self.model(images)

    def training_step(self, batch: Dict[str, Any], batch_idx: int) -> Optional[torch.Tensor]:
        images, targets = batch['images'], batch['targets']
        if not images:
            return None  # every sample of this batch was skipped as bad input
        losses = self.model(images, [torchvision_target(target) for target in targets])
        loss = sum(losses.values())
        for name, value in losses.items():
            self.log(f'train/{name}', value, batch_size=len(images))
        self.log('train/loss', loss, prog_bar=True, batch_size=len(images))
        return loss

    def detections(self, images: List[torch.Tensor]) -> List[Detections]:
        """Model outputs without background detections, masks thresholded to (N, H, W) bool, in the coordinates
        of `images` (each (3, H, W)). An image too long and thin to keep a side of the largest stride after the
        evaluation resize (a 10000 x 20 image would resize to 0 rows) is first squeezed along its long side
        (`_squeezed_for_resize`), and its boxes and masks are stretched back."""
        squeezed = [self._squeezed_for_resize(image) for image in images]
        outputs = []
        for image, model_input, output in zip(images, squeezed, self.model(squeezed)):
            keep = output['labels'] > 0  # FCOS / RetinaNet score the background channel too
            output = {name: value[keep] for name, value in output.items()}
            height, width = image.shape[-2:]
            if model_input.shape[-2:] != image.shape[-2:]:
                output['boxes'] = output['boxes'] * output['boxes'].new_tensor(
                    [width / model_input.shape[-1], height / model_input.shape[-2]]).repeat(2)
                if 'masks' in output and len(output['masks']):
                    output['masks'] = F.interpolate(output['masks'], size=(height, width), mode='bilinear')
            output['boxes'][:, 0::2].clamp_(0, width)
            output['boxes'][:, 1::2].clamp_(0, height)
            if 'masks' in output:
                output['masks'] = output['masks'].reshape(-1, height, width) > MASK_THRESHOLD  # (N, H, W)
            outputs.append(output)
        return outputs

    def _squeezed_for_resize(self, image: torch.Tensor) -> torch.Tensor:
        """(3, H, W) -> (3, H', W'): the long side shortened (antialiased) just enough that the short side keeps
        at least the largest stride after the detector resizes the long side to max_size; other images as they are."""
        transform = self.model.transform
        height, width = image.shape[-2:]
        shortest = min(height, width)
        longest = max(int(transform.max_size * shortest / transform.size_divisible), shortest)  # long side allowed
        if max(height, width) <= longest:
            return image
        size = (height, longest) if width > height else (longest, width)
        return F.interpolate(image[None].float(), size=size, mode='bilinear', antialias=True)[0].to(image.dtype)

    def _coco_datamodule(self) -> Any:
        """The trainer's datamodule: its `categories` map labels to category ids, `annotation_file(split)` is the
        ground truth."""
        datamodule = self.trainer.datamodule
        if not isinstance(datamodule, CocoGroundTruth):
            raise RuntimeError("ObjectDetector evaluates and predicts with a vlm.data.CocoDataModule "
                               "(trainer.fit / validate / test / predict(model, datamodule=...))")
        return datamodule

    def _metric(self, split: str) -> CocoMeanAveragePrecision:
        if split not in self.metrics:
            datamodule = self._coco_datamodule()
            self.metrics[split] = CocoMeanAveragePrecision(
                datamodule.annotation_file(split), [0] + datamodule.categories.ids, self.iou_types,
                self.eval_backend).to(self.device)
        return self.metrics[split]

    def _evaluate_batch(self, batch: Dict[str, Any], split: str) -> None:
        if not batch['images']:
            return
        image_ids = [int(target['image_id']) for target in batch['targets']]
        self._metric(split).update(image_ids, self.detections(batch['images']))

    def validation_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self._evaluate_batch(batch, 'val')

    def test_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self._evaluate_batch(batch, 'test')

    def on_validation_epoch_end(self) -> None:
        self._log_coco_stats('val')

    def on_test_epoch_end(self) -> None:
        self._log_coco_stats('test')

    def _log_coco_stats(self, split: str) -> None:
        """The 12 stats per IoU type (the same on every rank: the metric gathers every rank's detections), the
        table printed and the results JSON saved in the log dir (rank 0)."""
        metric = self._metric(split)
        computed = metric.compute()
        metric.reset()
        log_dir = Path(self.trainer.log_dir or '.')  # on every rank: in DDP it is a broadcast
        if self.trainer.is_global_zero and not self.trainer.sanity_checking:
            path = log_dir / f'coco_results_{split}_epoch{self.current_epoch:03d}.json'
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(computed['results']))
        for iou_type, scored in computed['scores'].items():
            self.print(f"{split} epoch {self.current_epoch}: COCO {iou_type} mAP on {computed['images']} images\n"
                       f"{scored['table']}")
            prefix = '' if iou_type == 'bbox' else f'{iou_type}_'
            for name, value in scored['stats'].items():
                self.log(f'{split}/{prefix}{name}', value, prog_bar=name == 'AP' and not prefix, sync_dist=True)

    # -- prediction ------------------------------------------------------------------------------------------

    def predict_step(self, batch: Dict[str, Any], batch_idx: int) -> List[Dict[str, Any]]:
        """Per image: its id, the image as uint8 (for drawing), its COCO results records and their labels."""
        if not batch['images']:
            return []
        image_ids = [int(target['image_id']) for target in batch['targets']]
        category_id = self._coco_datamodule().categories.category_id
        return [
            {'image_id': image_id, 'image': to_uint8(image), 'labels': d['labels'].tolist(),
             'results': detections_to_coco_results([image_id], [d['boxes']], [d['scores']], [d['labels']],
                                                   category_id, [d['masks']] if 'masks' in d else None)}
            for image_id, image, d in zip(image_ids, batch['images'], self.detections(batch['images']))
        ]

    def write_predictions(self, items: List[Dict[str, Any]], output_dir: Path) -> Path:
        """`coco_results.json` (all records) and `<image_id>.png` per image: detections scoring at least
        `draw_score_thresh`, boxes captioned with class name and score, masks blended in."""
        path = output_dir / 'coco_results.json'
        path.write_text(json.dumps([record for item in items for record in item['results']]))
        names = self.hparams.class_names
        for item in items:
            shown = [(record, label) for record, label in zip(item['results'], item['labels'])
                     if record['score'] >= self.draw_score_thresh]
            boxes = box_convert(torch.tensor([record['bbox'] for record, _ in shown], dtype=torch.float32)
                                .reshape(-1, 4), 'xywh', 'xyxy')
            captions = [f"{names[label] if names else record['category_id']} {record['score']:.2f}"
                        for record, label in shown]
            masks = None
            if shown and 'segmentation' in shown[0][0]:
                decoded = mask_utils.decode([record['segmentation'] for record, _ in shown])  # (H, W, N)
                masks = torch.from_numpy(np.ascontiguousarray(decoded.transpose(2, 0, 1))).bool()  # (N, H, W)
            drawn = draw_detections(item['image'], boxes, [label for _, label in shown], captions, masks)
            Image.fromarray(drawn.permute(1, 2, 0).numpy()).save(output_dir / f"{item['image_id']:012d}.png")
        print(f"wrote {sum(len(item['results']) for item in items)} detections on {len(items)} images to {path}")
        return path
