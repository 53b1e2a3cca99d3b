"""Object detection and instance segmentation on the vlm encoder (ViTDet-style), evaluated with COCO mAP."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

import numpy as np
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from vlm.data.coco_json import read_json
from vlm.data.transforms import normalization_for
from vlm.distributed import gather_objects
from vlm.drawing import draw_detections, to_uint8
from vlm.evaluation import BACKENDS, detections_to_coco_results, evaluate_coco

from .base import VlmTask
from .detection_backbone import ViTDetBackbone, encoder_layer_matcher
from .detectors import DEFAULT_LEVELS, build_detector

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
    """FCOS, RetinaNet or Mask R-CNN (torchvision) on a ViTDet backbone: the encoder's last grid through a
    simple feature pyramid (`vlm.pyramid`).

    num_classes: categories + background (label 0), linked from the datamodule, like `class_names`.
    detector: 'fcos' | 'retinanet' | 'maskrcnn'. pyramid_strides / extra_levels / anchor_scale: default per
    detector (see `vlm.tasks.detectors`); detector_kwargs: more arguments of the torchvision detector class.
    min_size / max_size: the evaluation resize (training images keep the datamodule's scale jitter).
    layer_decay scales the encoder's lr only (block i: decay ** (depth - i)); the pyramid and heads get the
    full lr. Validation / test: COCO mAP (`val/AP`, `val/AP50`, ..., and `val/segm_AP`, ... for Mask R-CNN)
    against the split's annotation file, the results JSON saved in the log dir. Prediction: `coco_results.json`
    and one PNG per image with the detections drawn; items keep each image (uint8) until written.
    compile_encoder: `torch.compile` the encoder's blocks (True, or `torch.compile` keywords; see VlmTask).
    """

    monitor = 'val/AP'

    def __init__(
            self,
            num_classes: int,
            class_names: Optional[List[str]] = None,
            detector: str = 'fcos',
            encoder: str = 'vlm_vit_small_patch16_rope_rms',
            encoder_kwargs: Optional[Dict[str, Any]] = None,
            pretrained_weights: Optional[str] = None,
            pyramid_channels: int = 256,
            pyramid_strides: Optional[List[int]] = None,
            extra_levels: Optional[int] = None,
            anchor_scale: Optional[float] = None,
            min_size: int = 1024,
            max_size: int = 1024,
            score_thresh: float = 0.05,
            detections_per_img: int = 100,
            detector_kwargs: Optional[Dict[str, Any]] = None,
            draw_score_thresh: float = 0.3,
            eval_backend: str = 'pycocotools',
            optimizer: str = 'adamw',
            lr: float = 1e-4,
            weight_decay: float = 0.1,
            layer_decay: Optional[float] = None,
            warmup_epochs: float = 1.0,
            min_lr: float = 1e-6,
            compile_encoder: Union[bool, Dict[str, Any]] = False,
    ) -> None:
        super().__init__(optimizer, lr, weight_decay, layer_decay, warmup_epochs, min_lr, compile_encoder)
        self.save_hyperparameters()
        if detector not in DEFAULT_LEVELS:
            raise ValueError(f"detector must be one of {tuple(DEFAULT_LEVELS)}, got {detector!r}")
        if eval_backend not in BACKENDS:
            raise ValueError(f"eval_backend must be one of {BACKENDS}, got {eval_backend!r}")
        default_strides, default_extra = DEFAULT_LEVELS[detector]
        backbone = ViTDetBackbone(
            encoder, encoder_kwargs, pretrained_weights, pyramid_channels,
            strides=pyramid_strides or default_strides,
            extra_levels=default_extra if extra_levels is None else extra_levels)
        mean, std = normalization_for(encoder)
        self.model = build_detector(
            detector, backbone, num_classes, anchor_scale, score_thresh, detections_per_img, detector_kwargs,
            min_size=min_size, max_size=max_size, image_mean=list(mean), image_std=list(std))
        self.with_masks = detector == 'maskrcnn'
        self.eval_backend = eval_backend
        self.draw_score_thresh = draw_score_thresh
        self._results: Dict[int, List[dict]] = {}  # image id -> its COCO results records, this epoch
        self._ground_truth: Dict[Path, dict] = {}

    # -- optimisation: timm's layer decay reads these (VlmTask.optimizer_model is this module) ----------------

    def optimizer_model(self) -> torch.nn.Module:
        return self

    def group_matcher(self, coarse: bool = False) -> Callable[[str], int]:
        """Layers for timm's layer-wise lr decay: the encoder's blocks; everything else at the top."""
        return encoder_layer_matcher(self.model.backbone.encoder, 'model.backbone.encoder.')

    def no_weight_decay(self) -> set:
        return {f'model.backbone.encoder.{name}' for name in self.model.backbone.encoder.no_weight_decay()}

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
        """Model outputs without background detections, masks thresholded to (N, H, W) bool."""
        outputs = []
        for output in self.model(images):
            keep = output['labels'] > 0  # FCOS / RetinaNet score the background channel too
            output = {name: value[keep] for name, value in output.items()}
            if 'masks' in output:
                output['masks'] = output['masks'][:, 0] > MASK_THRESHOLD  # (N, H, W)
            outputs.append(output)
        return outputs

    def _coco_datamodule(self) -> Any:
        """The trainer's datamodule: its `categories` map labels to category ids, `annotation_file(split)` is the
        ground truth."""
        datamodule = self.trainer.datamodule
        if not (hasattr(datamodule, 'categories') and hasattr(datamodule, 'annotation_file')):
            raise RuntimeError("ObjectDetector evaluates and predicts with a vlm.data.CocoDataModule "
                               "(trainer.fit / validate / test / predict(model, datamodule=...))")
        return datamodule

    def coco_results(self, image_ids: List[int], detections: List[Detections]) -> List[List[dict]]:
        """Per image, its COCO results records (category ids of the dataset, boxes XYWH, RLE masks)."""
        categories = self._coco_datamodule().categories
        return [
            detections_to_coco_results([image_id], [d['boxes']], [d['scores']], [d['labels']],
                                       categories.category_id, [d['masks']] if 'masks' in d else None)
            for image_id, d in zip(image_ids, detections)
        ]

    def _evaluate_batch(self, batch: Dict[str, Any]) -> None:
        if not batch['images']:
            return
        image_ids = [int(target['image_id']) for target in batch['targets']]
        self._results.update(zip(image_ids, self.coco_results(image_ids, self.detections(batch['images']))))

    def on_validation_epoch_start(self) -> None:
        self._results = {}

    def on_test_epoch_start(self) -> None:
        self._results = {}

    def validation_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self._evaluate_batch(batch)

    def test_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self._evaluate_batch(batch)

    def on_validation_epoch_end(self) -> None:
        self._log_coco_stats('val')

    def on_test_epoch_end(self) -> None:
        self._log_coco_stats('test')

    # -- COCO evaluation -------------------------------------------------------------------------------------

    def _gathered_results(self) -> Dict[int, List[dict]]:
        """This epoch's results from every rank, each image once (a distributed sampler repeats some)."""
        merged: Dict[int, List[dict]] = {}
        for shard in gather_objects(self._results):
            for image_id, records in shard.items():
                merged.setdefault(image_id, records)
        return merged

    def _split_ground_truth(self, split: str, image_ids: set) -> dict:
        """The split's annotation JSON restricted to the evaluated images (all of them unless batches were
        limited, e.g. `limit_val_batches` or the sanity check)."""
        path = self._coco_datamodule().annotation_file(split)
        if path not in self._ground_truth:
            self._ground_truth[path] = read_json(path)
        gt = self._ground_truth[path]
        return {**gt, 'images': [image for image in gt['images'] if image['id'] in image_ids],
                'annotations': [ann for ann in gt.get('annotations', []) if ann['image_id'] in image_ids]}

    def _coco_stats(self, per_image: Dict[int, List[dict]], split: str, log_dir: Path) -> Dict[str, float]:
        """Evaluate (rank 0): the 12 stats per IoU type, the table printed, the results JSON saved in log_dir."""
        results = [record for records in per_image.values() for record in records]
        if not self.trainer.sanity_checking:
            path = log_dir / f'coco_results_{split}_epoch{self.current_epoch:03d}.json'
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(results))
        gt = self._split_ground_truth(split, set(per_image))
        stats: Dict[str, float] = {}
        for iou_type, prefix in [('bbox', '')] + ([('segm', 'segm_')] if self.with_masks else []):
            coco = evaluate_coco(gt, results, iou_type=iou_type, backend=self.eval_backend)
            self.print(f"{split} epoch {self.current_epoch}: COCO {iou_type} mAP on {len(per_image)} images\n"
                       f"{coco.table}")
            stats.update({f'{prefix}{name}': value for name, value in coco.as_dict().items()})
        return stats

    def _log_coco_stats(self, split: str) -> None:
        per_image = self._gathered_results()
        self._results = {}
        log_dir = Path(self.trainer.log_dir or '.')  # on every rank: in DDP it is a broadcast
        stats = self._coco_stats(per_image, split, log_dir) if self.trainer.is_global_zero else None
        stats = self.trainer.strategy.broadcast(stats, src=0)
        for name, value in stats.items():  # the same on every rank: sync_dist's mean keeps it (and Lightning quiet)
            self.log(f'{split}/{name}', value, prog_bar=name == 'AP', sync_dist=True)

    # -- prediction ------------------------------------------------------------------------------------------

    def predict_step(self, batch: Dict[str, Any], batch_idx: int) -> List[Dict[str, Any]]:
        """Per image: its id, the image as uint8 (for drawing), its COCO results records and their labels."""
        if not batch['images']:
            return []
        image_ids = [int(target['image_id']) for target in batch['targets']]
        detections = self.detections(batch['images'])
        return [
            {'image_id': image_id, 'image': to_uint8(image), 'labels': d['labels'].tolist(), 'results': records}
            for image_id, image, d, records in zip(image_ids, batch['images'], detections,
                                                   self.coco_results(image_ids, detections))
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
            boxes = torch.tensor([record['bbox'] for record, _ in shown], dtype=torch.float32).reshape(-1, 4)
            boxes[:, 2:] += boxes[:, :2]  # XYWH -> XYXY
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
