"""Semantic segmentation on the vlm encoder: simple feature pyramid + FPN fusion head, mIoU evaluation."""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from timm.scheduler import PolyLRScheduler
from timm.scheduler.scheduler import Scheduler
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from vlm.data.transforms import normalization_for
from vlm.drawing import draw_label_map, label_palette, to_uint8

from .base import VlmTask
from .detection_backbone import ViTDetBackbone, encoder_layer_matcher
from .segmentation_head import FpnFusionHead
from .sliding_window import slide_inference

Images = Union[torch.Tensor, List[torch.Tensor]]  # (B, 3, H, W), or [(3, Hi, Wi)] when sizes differ
INFERENCE_MODES = ('whole', 'slide')
SCHEDULES = ('cosine', 'poly')


class SemanticSegmenter(VlmTask):
    """Per-pixel classes from the encoder's last grid: the ViTDet simple feature pyramid (strides 4..32 by
    default) and an FPN / UPerNet-style fusion head (`FpnFusionHead`), logits upsampled to the input size.

    num_classes / class_names: linked from the datamodule. ignore_index: label of pixels left out of the loss
    and the metrics. Any input size: the image is zero-padded to a multiple of the largest stride for the
    forward pass and the logits cropped back. inference: 'whole' (the full image at once) or 'slide'
    (`window` x `window` windows every `stride` pixels, logits averaged; for images larger than the training
    crops). schedule: 'cosine' (VlmTask's) or 'poly' (timm's PolyLRScheduler with `poly_power`, as
    mmsegmentation's ADE20K recipes); both with linear warmup. layer_decay scales the encoder's lr only
    (block i: decay ** (depth - i)); the pyramid and head get the full lr. Validation / test log `val/mIoU`
    (mean over the classes present in the labels or the predictions), `val/pixel_acc` and `val/loss`, and print
    the per-class IoU. Prediction writes `<name>_mask.png` (palette PNG: pixel value = class label, classes
    coloured; a class named 'background' black) and `<name>_overlay.png` per image. compile_encoder:
    `torch.compile` the encoder's blocks (see `VlmTask`).
    """

    monitor = 'val/mIoU'

    def __init__(
            self,
            num_classes: int,
            class_names: Optional[List[str]] = None,
            encoder: str = 'vlm_vit_small_patch16_rope_rms',
            encoder_kwargs: Optional[Dict[str, Any]] = None,
            pretrained_weights: Optional[str] = None,
            pyramid_channels: int = 256,
            pyramid_strides: Sequence[int] = (4, 8, 16, 32),
            head_channels: int = 256,
            dropout: float = 0.1,
            ignore_index: int = 255,
            inference: str = 'whole',
            window: int = 512,
            stride: int = 341,
            overlay_alpha: float = 0.5,
            schedule: str = 'cosine',
            poly_power: float = 1.0,
            optimizer: str = 'adamw',
            lr: float = 1e-4,
            weight_decay: float = 0.05,
            layer_decay: Optional[float] = None,
            warmup_epochs: float = 1.0,
            min_lr: float = 1e-6,
            compile_encoder: Union[bool, Dict[str, Any]] = False,
    ) -> None:
        super().__init__(optimizer, lr, weight_decay, layer_decay, warmup_epochs, min_lr, compile_encoder)
        self.save_hyperparameters()
        if inference not in INFERENCE_MODES:
            raise ValueError(f"inference must be one of {INFERENCE_MODES}, got {inference!r}")
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        if inference == 'slide' and not 0 < stride <= window:
            raise ValueError(f"sliding window needs 0 < stride <= window, got window={window}, stride={stride}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class_names for num_classes={num_classes}")
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.inference, self.window, self.stride = inference, window, stride
        self.schedule, self.poly_power = schedule, poly_power
        self.backbone = ViTDetBackbone(encoder, encoder_kwargs, pretrained_weights, pyramid_channels,
                                       strides=pyramid_strides, extra_levels=0)
        self.head = FpnFusionHead(pyramid_channels, num_classes, head_channels, len(pyramid_strides), dropout)
        patch = self.backbone.encoder.patch_embed.patch_size[0]
        self.size_divisor = math.lcm(patch, max(pyramid_strides))  # every map's size divides the padded input
        self.iou = MulticlassJaccardIndex(num_classes, average='none', ignore_index=ignore_index,
                                          zero_division=float('nan'))  # NaN: class absent from labels and preds
        self.pixel_acc = MulticlassAccuracy(num_classes, average='micro', ignore_index=ignore_index)
        self.class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        self.normalization = normalization_for(encoder)  # to undo the datamodule's, unless it says its own

    # -- optimisation: timm's layer decay reads these (VlmTask.optimizer_model is this module) ----------------

    def optimizer_model(self) -> torch.nn.Module:
        return self

    def group_matcher(self, coarse: bool = False) -> Callable[[str], int]:
        """Layers for timm's layer-wise lr decay: the encoder's blocks; the pyramid and head at the top."""
        return encoder_layer_matcher(self.backbone.encoder, 'backbone.encoder.')

    def no_weight_decay(self) -> set:
        return {f'backbone.encoder.{name}' for name in self.backbone.encoder.no_weight_decay()}

    def build_lr_scheduler(self, optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int) -> Scheduler:
        if self.schedule == 'cosine':
            return super().build_lr_scheduler(optimizer, total_steps, warmup_steps)
        return PolyLRScheduler(optimizer, t_initial=total_steps, power=self.poly_power, lr_min=self.min_lr,
                               warmup_t=warmup_steps, warmup_lr_init=self.lr * 1e-3, t_in_epochs=False)

    # -- model -----------------------------------------------------------------------------------------------

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W), any H and W -> logits (B, num_classes, H, W)."""
        height, width = images.shape[-2:]
        pad_h, pad_w = -height % self.size_divisor, -width % self.size_divisor
        padded = F.pad(images, (0, pad_w, 0, pad_h))  # (B, 3, H', W'), multiples of size_divisor
        levels = list(self.backbone(padded).values())  # [(B, C, H'/s, W'/s) for s in pyramid_strides]
        logits = self.head(levels)  # (B, K, H'/s0, W'/s0)
        logits = F.interpolate(logits, size=padded.shape[-2:], mode='bilinear', align_corners=False)
        return logits[:, :, :height, :width]  # (B, K, H, W)

    def infer(self, images: torch.Tensor) -> torch.Tensor:
        """Evaluation logits (B, K, H, W) with the configured `inference` ('whole' or 'slide'), in float32."""
        if self.inference == 'slide':
            return slide_inference(self, images, self.num_classes, self.window, self.stride)
        return self(images).float()

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
