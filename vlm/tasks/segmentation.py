"""Semantic segmentation on the vlm encoder: simple feature pyramid + FPN fusion head, mIoU evaluation."""
from __future__ import annotations

import io
import math
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from timm.data import resolve_model_data_config
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from vlm.drawing import draw_label_map, label_palette, to_uint8
from vlm.models import SemanticSegmentationModel

from .base import CompileOptions, VlmTask
from .optimization import DEFAULT_OPTIMIZATION, Optimization

Images = Union[torch.Tensor, List[torch.Tensor]]  # (B, 3, H, W), or [(3, Hi, Wi)] when sizes differ


class SemanticSegmenter(VlmTask):
    """Per-pixel classes: `vlm.models.SemanticSegmentationModel` (the ViTDet simple feature pyramid, strides 4..32
    by default, and an FPN / UPerNet-style fusion head), trained with cross-entropy over the labelled pixels.

    num_classes / class_names: linked from the datamodule. ignore_index: label of pixels left out of the loss
    and the metrics. model_args: the segmenter's own settings, the arguments of
    `vlm.models.SemanticSegmentationModel` (encoder, encoder_kwargs, encoder_weights, pyramid_channels,
    pyramid_strides, head_channels, dropout, inference: 'whole' or 'slide', window, stride). Any input size: the
    image is zero-padded to a multiple of the largest stride for the forward pass and the logits cropped back;
    'slide' averages the logits of `window` x `window` windows every `stride` pixels (for images larger than the
    training crops); inference settings do not change the weights, so a command line may set them for a
    checkpoint. optimization: with
    `schedule: poly` (`poly_power`) for mmsegmentation's ADE20K recipes; layer decay scales the encoder's lr only.
    Validation / test log `val/mIoU` (mean over the classes present in the labels or the predictions),
    `val/pixel_acc` and `val/loss`, and print the per-class IoU. Prediction writes `<name>_mask.png` (palette PNG:
    pixel value = class label, classes coloured; a class named 'background' black) and `<name>_overlay.png` per
    image. compile_encoder: see `VlmTask`.
    """

    monitor = 'val/mIoU'
    encoder_path = 'model.backbone.encoder'
    default_optimization = replace(DEFAULT_OPTIMIZATION, lr=1e-4)
    state_dict_renames = {'backbone.': 'model.backbone.', 'head.': 'model.head.'}  # vlm 0.1 held them directly

    def __init__(
            self,
            num_classes: int,
            class_names: Optional[List[str]] = None,
            ignore_index: int = 255,
            overlay_alpha: float = 0.5,
            optimization: Optional[Optimization] = None,
            compile_encoder: CompileOptions = False,
            **model_args: Any,
    ) -> None:
        super().__init__(optimization, compile_encoder)
        self.save_task_hyperparameters()
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class_names for num_classes={num_classes}")
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.model = SemanticSegmentationModel(num_classes, **model_args)
        self.iou = MulticlassJaccardIndex(num_classes, average='none', ignore_index=ignore_index,
                                          zero_division=float('nan'))  # NaN: class absent from labels and preds
        self.pixel_acc = MulticlassAccuracy(num_classes, average='micro', ignore_index=ignore_index)
        self.class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        config = resolve_model_data_config(self.model.backbone.encoder)
        self.normalization = (config['mean'], config['std'])  # to undo the datamodule's, unless it says its own

    # -- model -----------------------------------------------------------------------------------------------

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W), any H and W -> logits (B, num_classes, H, W)."""
        return self.model(images)

    def infer(self, images: torch.Tensor) -> torch.Tensor:
        """Evaluation logits (B, K, H, W) with the configured `inference` ('whole' or 'slide'), in float32."""
        return self.model.infer(images)

    @staticmethod
    def _per_image(images: Images, masks: Optional[Images] = None) -> List[Tuple[torch.Tensor, Any]]:
        """A batch as (images (B, 3, H, W), masks (B, H, W)) groups: the whole batch when stacked, else one
        (1, 3, Hi, Wi) group per image (images of different sizes)."""
        if isinstance(images, torch.Tensor):
            return [(images, masks)]
        masks = masks if masks is not None else [None] * len(images)
        return [(image[None], None if mask is None else mask[None]) for image, mask in zip(images, masks)]

    def _loss(self, logits: torch.Tensor, masks: torch.Tensor) -> Tuple[torch.Tensor, int]:
        """Summed cross-entropy over the labelled pixels, and their count (a batch may be all ignored)."""
        loss = F.cross_entropy(logits.float(), masks, ignore_index=self.ignore_index, reduction='sum')
        return loss, int((masks != self.ignore_index).sum())

    # -- steps -----------------------------------------------------------------------------------------------

    def training_step(self, batch: Dict[str, Any], batch_idx: int) -> Optional[torch.Tensor]:
        images, masks = batch['images'], batch['masks']
        if len(images) == 0:
            return None  # every sample of this batch was skipped as bad input
        total, pixels = 0.0, 0
        for group_images, group_masks in self._per_image(images, masks):
            loss, count = self._loss(self(group_images), group_masks)
            total, pixels = total + loss, pixels + count
        loss = total / max(pixels, 1)  # mean over labelled pixels; 0 (with gradients) when there are none
        self.log('train/loss', loss, prog_bar=True, batch_size=len(images))
        return loss

    def _evaluate(self, batch: Dict[str, Any], stage: str) -> None:
        images, masks = batch['images'], batch['masks']
        if len(images) == 0:
            return
        total, pixels = 0.0, 0
        for group_images, group_masks in self._per_image(images, masks):
            logits = self.infer(group_images)  # (b, K, H, W)
            loss, count = self._loss(logits, group_masks)
            total, pixels = total + float(loss), pixels + count
            predictions = logits.argmax(1)  # (b, H, W)
            self.iou.update(predictions, group_masks)
            self.pixel_acc.update(predictions, group_masks)
        if pixels:
            self.log(f'{stage}/loss', total / pixels, batch_size=len(images), sync_dist=True)

    def validation_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, 'val')

    def test_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, 'test')

    def on_validation_epoch_end(self) -> None:
        self._log_metrics('val')

    def on_test_epoch_end(self) -> None:
        self._log_metrics('test')

    def _log_metrics(self, stage: str) -> None:
        """mIoU and pixel accuracy over the epoch (torchmetrics gathers every rank's counts), per-class IoU
        printed."""
        if int(self.iou.confmat.sum()) == 0 and self.trainer.world_size == 1:
            return  # nothing was evaluated (e.g. every sample skipped as bad input)
        per_class = self.iou.compute()  # (K,), NaN for classes absent from labels and predictions
        present = ~per_class.isnan()
        miou = per_class[present].mean() if present.any() else per_class.new_tensor(0.0)
        accuracy = self.pixel_acc.compute()
        self.iou.reset()
        self.pixel_acc.reset()
        # the same value on every rank: sync_dist's mean keeps it (and Lightning quiet)
        self.log(f'{stage}/mIoU', miou, prog_bar=True, sync_dist=True)
        self.log(f'{stage}/pixel_acc', accuracy, sync_dist=True)
        if not self.trainer.sanity_checking:
            self.print(self.iou_table(per_class, stage, float(miou), float(accuracy)))

    def iou_table(self, per_class: torch.Tensor, stage: str, miou: float, accuracy: float) -> str:
        """The per-class IoU as a text table ('-': the class is in neither the labels nor the predictions)."""
        width = max(len('class'), *(len(name) for name in self.class_names))
        lines = [f"{stage} epoch {self.current_epoch}: mIoU {miou:.4f}, pixel accuracy {accuracy:.4f}",
                 f"  {'class':<{width}}  IoU"]
        for name, iou in zip(self.class_names, per_class.tolist()):
            lines.append(f"  {name:<{width}}  {'-' if math.isnan(iou) else f'{iou:.4f}'}")
        return '\n'.join(lines)

    # -- prediction ------------------------------------------------------------------------------------------

    def _denormalize(self, image: torch.Tensor) -> torch.Tensor:
        """(3, H, W) normalised by the datamodule -> uint8, with the datamodule's statistics when it has them."""
        datamodule = getattr(self.trainer, 'datamodule', None) if self._trainer is not None else None
        mean, std = getattr(datamodule, 'stats', None) or self.normalization
        mean = torch.tensor(mean, device=image.device).view(3, 1, 1)
        std = torch.tensor(std, device=image.device).view(3, 1, 1)
        return to_uint8(image.float() * std + mean)

    def render(self, image: torch.Tensor, labels: torch.Tensor) -> Tuple[bytes, bytes]:
        """image (3, H, W) normalised, labels (H, W) predicted -> (mask PNG, overlay PNG) bytes.

        Mask: a palette PNG ('P' mode; an RGB PNG beyond 256 classes) whose pixel values are the class labels.
        Overlay: the image with each predicted class blended in its colour (`draw_segmentation_masks`).
        """
        blank = [i for i, name in enumerate(self.class_names) if name.lower() == 'background']
        palette = label_palette(self.num_classes, blank)
        labels = labels.cpu()
        if self.num_classes <= 256:
            mask = Image.fromarray(labels.numpy().astype(np.uint8), mode='P')
            mask.putpalette([channel for color in palette for channel in color])
        else:
            mask = Image.fromarray(np.asarray(palette, dtype=np.uint8)[labels.numpy()])
        overlay = draw_label_map(self._denormalize(image.cpu()), labels, self.num_classes, blank,
                                 self.hparams.overlay_alpha)
        encoded = []
        for picture in (mask, Image.fromarray(overlay.permute(1, 2, 0).numpy())):
            buffer = io.BytesIO()
            picture.save(buffer, format='PNG')
            encoded.append(buffer.getvalue())
        return encoded[0], encoded[1]

    def predict_step(self, batch: Dict[str, Any], batch_idx: int) -> List[Dict[str, Any]]:
        """Per image: its name (file stem; `batch<i>_<j>` when the data carries none), size and the two PNGs,
        already encoded, so that a long prediction run holds compressed images only."""
        images = batch['images']
        if len(images) == 0:
            return []
        names = batch.get('names') or [f'batch{batch_idx:06d}_{j}' for j in range(len(images))]
        items, index = [], 0
        for group_images, _ in self._per_image(images):
            predictions = self.infer(group_images).argmax(1)  # (b, H, W)
            for image, labels in zip(group_images, predictions):
                mask_png, overlay_png = self.render(image, labels)
                items.append({'name': names[index], 'size': tuple(labels.shape), 'mask': mask_png,
                              'overlay': overlay_png})
                index += 1
        return items

    def write_predictions(self, items: List[Dict[str, Any]], output_dir: Path) -> Path:
        """`<name>_mask.png` and `<name>_overlay.png` per image in `output_dir`."""
        for item in items:
            (output_dir / f"{item['name']}_mask.png").write_bytes(item['mask'])
            (output_dir / f"{item['name']}_overlay.png").write_bytes(item['overlay'])
        print(f"wrote the predicted masks and overlays of {len(items)} images to {output_dir}")
        return output_dir
