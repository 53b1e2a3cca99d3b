"""Image classification (ImageNet-style) on any timm encoder, the vlm RoPE/RMSNorm ViTs by default."""
from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F
from timm.data import Mixup
from timm.loss import SoftTargetCrossEntropy
from timm.optim import param_groups_layer_decay, param_groups_weight_decay
from timm.utils import ModelEmaV3
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from vlm.encoder import create_encoder
from vlm.encoder.pooling import check_pool, pool_features, pooled_width

from .base import CompileOptions, VlmTask
from .optimization import Optimization


class ImageClassifier(VlmTask):
    """timm model (`encoder` + `encoder_kwargs`) with a `num_classes` head.

    Training: label smoothing, Mixup/CutMix (`timm.data.Mixup`, off when both alphas are 0), EMA of the weights
    (`timm.utils.ModelEmaV3`, off when `ema_decay` is None), layer-wise lr decay and warmup + cosine (VlmTask).
    Validation logs `val/acc1`, `val/acc5` of the evaluated weights (the EMA's when `eval_ema`, else the live
    ones) and the other set's as `val/ema_acc1` / `val/live_acc1`.
    encoder_weights: initial weights (a local .safetensors / .pth file, a `vlm convert` folder's model file, or any
    vlm checkpoint); its classifier head is skipped unless `load_head` (fine-tuning to new classes).
    optimization / compile_encoder: see `VlmTask`.

    Pretrained encoders (`configs/transfer/finetune_pretrained.yaml`):
    pool: the features the head reads: None for the encoder's own `global_pool`, or 'token' (class token), 'avg'
        (mean patch token), 'token+avg' (both concatenated, DINOv2's linear evaluation).
    freeze_encoder: linear probing: only the head trains; the encoder stays in eval mode and gets no gradients.
    linear_probe_steps: LP-FT (Kumar et al., ICLR 2022): the encoder is frozen for the first steps, while the new
        head learns, then everything fine-tunes, so the random head's gradients do not distort the pretrained
        features. Give `optimization.warmup_steps` beyond it so the encoder starts slowly.
    head_lr_scale: the head's lr (and the pooled-feature norm's) as a multiple of the top layer's lr: a new head
        wants a larger lr than pretrained blocks.
    """

    monitor = 'val/acc1'
    encoder_path = 'model'

    def __init__(
            self,
            num_classes: int,
            encoder: str = 'vlm_vit_small_patch16_rope_rms',
            encoder_kwargs: Optional[Dict[str, Any]] = None,
            encoder_weights: Optional[str] = None,
            load_head: bool = False,
            label_smoothing: float = 0.1,
            mixup_alpha: float = 0.0,
            cutmix_alpha: float = 0.0,
            mixup_prob: float = 1.0,
            ema_decay: Optional[float] = None,
            eval_ema: bool = False,
            class_names: Optional[List[str]] = None,
            optimization: Optional[Optimization] = None,
            compile_encoder: CompileOptions = False,
            pool: Optional[str] = None,
            freeze_encoder: bool = False,
            linear_probe_steps: int = 0,
            head_lr_scale: float = 1.0,
    ) -> None:
        super().__init__(optimization, compile_encoder)
        self.save_task_hyperparameters()
        if linear_probe_steps < 0 or head_lr_scale <= 0:
            raise ValueError(f'linear_probe_steps must be >= 0 and head_lr_scale > 0, got {linear_probe_steps} '
                             f'and {head_lr_scale}')
        self.num_classes = num_classes
        self.model = create_encoder(encoder, encoder_kwargs, encoder_weights, num_classes=num_classes,
                                    load_head=load_head)
        check_pool(self.model, pool)
        self.pool, self.freeze_encoder = pool, freeze_encoder
        self.linear_probe_steps, self.head_lr_scale = linear_probe_steps, head_lr_scale
        if pool == 'token+avg' and num_classes:
            self.model.head = nn.Linear(pooled_width(self.model, pool), num_classes)
        if freeze_encoder:
            self.model.requires_grad_(False)
            self.model.head.requires_grad_(True)
        self.mixup = None
        if mixup_alpha > 0 or cutmix_alpha > 0:
            self.mixup = Mixup(mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha, prob=mixup_prob,
                               label_smoothing=label_smoothing, num_classes=num_classes)
        self.soft_loss = SoftTargetCrossEntropy()
        self.label_smoothing = label_smoothing
        self.ema = ModelEmaV3(self.model, decay=ema_decay).requires_grad_(False) if ema_decay else None
        self.eval_ema = eval_ema and self.ema is not None
        top_k = min(5, num_classes)
        self.metrics = torch.nn.ModuleDict({
            name: MulticlassAccuracy(num_classes=num_classes, top_k=k, average='micro')
            for name, k in (('acc1', 1), ('acc5', top_k), ('other_acc1', 1))
        })

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) -> logits (B, num_classes) of the live weights."""
        return self.classify(self.model, images)

    def classify(self, model: nn.Module, images: torch.Tensor, frozen_encoder: bool = False) -> torch.Tensor:
        """images (B, 3, H, W) -> logits (B, num_classes) of `model` (the live weights or the EMA's), through
        `pool`; with `frozen_encoder` the encoder runs without gradients and only the head gets them."""
        if self.pool is None and not frozen_encoder:
            return model(images)
        with torch.no_grad() if frozen_encoder else nullcontext():  # evaluation keeps its caller's no-grad mode
            features = pool_features(model, model.forward_features(images), self.pool)  # (B, D) or (B, 2D)
        return model.head(features)

    def encoder_frozen(self) -> bool:
        """Whether this training step leaves the encoder as it is (linear probing, or LP-FT's first steps)."""
        return self.freeze_encoder or self.global_step < self.linear_probe_steps

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """A frozen encoder runs in eval mode (no dropout or drop path on the features the head learns from); it
        goes back to train mode when LP-FT starts fine-tuning it. The mode is set only when it changes (Lightning
        puts the whole module in train mode at each training epoch's start)."""
        encoder_training = not self.encoder_frozen()
        if self.model.training != encoder_training or not self.model.head.training:
            self.model.train(encoder_training)
            self.model.head.train()

    def optimizer_params(self) -> Any:
        """timm's parameter groups (layer-wise lr decay when set; no weight decay on 1-D tensors and the encoder's
        own no-decay parameters), with the head's parameters in groups of their own at `head_lr_scale` x the lr
        (the module itself when the scale is 1: timm builds the same groups)."""
        if self.head_lr_scale == 1.0:
            return self
        settings = self.optimization
        if settings.layer_decay:
            groups = param_groups_layer_decay(self, settings.weight_decay, self.no_weight_decay(),
                                              layer_decay=settings.layer_decay)
        else:
            groups = param_groups_weight_decay(self, settings.weight_decay, no_weight_decay_list=self.no_weight_decay())
        head = {id(p) for p in self.model.head.parameters()}
        split: List[Dict[str, Any]] = []
        for group in groups:
            for is_head in (False, True):
                params = [p for p in group['params'] if (id(p) in head) == is_head]
                if params:
                    scale = group.get('lr_scale', 1.0) * (self.head_lr_scale if is_head else 1.0)
                    split.append({**group, 'params': params, 'lr_scale': scale})
        return split

    def evaluated_model(self) -> torch.nn.Module:
        return self.ema.module if self.eval_ema else self.model

    def training_step(self, batch: Dict[str, Any], batch_idx: int) -> Optional[torch.Tensor]:
        images, labels = batch['images'], batch['labels']
        if len(images) == 0:
            return None  # every sample of this batch was skipped as bad input
        frozen = self.encoder_frozen()
        if self.mixup is not None and len(images) % 2 == 0:
            images, soft_targets = self.mixup(images, labels)
            loss = self.soft_loss(self.classify(self.model, images, frozen), soft_targets)
        else:
            loss = F.cross_entropy(self.classify(self.model, images, frozen), labels,
                                   label_smoothing=self.label_smoothing)
        self.log('train/loss', loss, prog_bar=True, batch_size=len(images))
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update(self.model, step=self.global_step)

    def _evaluate(self, batch: Dict[str, Any], stage: str) -> None:
        images, labels = batch['images'], batch['labels']
        if len(images) == 0:
            return
        logits = self.classify(self.evaluated_model(), images)
        self.log(f'{stage}/loss', F.cross_entropy(logits, labels), batch_size=len(images), sync_dist=True)
        for name in ('acc1', 'acc5'):
            self.metrics[name](logits, labels)
            self.log(f'{stage}/{name}', self.metrics[name], prog_bar=name == 'acc1', batch_size=len(images))
        if self.ema is not None:
            other = self.model if self.eval_ema else self.ema.module
            self.metrics['other_acc1'](self.classify(other, images), labels)
            name = 'live_acc1' if self.eval_ema else 'ema_acc1'
            self.log(f'{stage}/{name}', self.metrics['other_acc1'], batch_size=len(images))

    def validation_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, 'val')

    def test_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, 'test')

    def predict_step(self, batch: Dict[str, Any], batch_idx: int) -> List[Dict[str, Any]]:
        """Per image: its path and the top-5 classes with probabilities."""
        if len(batch['images']) == 0:
            return []
        probabilities = self.classify(self.evaluated_model(), batch['images']).softmax(-1)
        top = probabilities.topk(min(5, self.num_classes), dim=-1)
        names = self.hparams.class_names
        return [
            {'path': path, 'top': [{'label': int(label), 'class': names[label] if names else str(int(label)),
                                    'probability': round(float(p), 6)} for p, label in zip(ps, labels)]}
            for path, ps, labels in zip(batch['paths'], top.values, top.indices)
        ]

    def write_predictions(self, items: List[Dict[str, Any]], output_dir: Path) -> Path:
        """One JSON line per image: {"path": ..., "top": [{"label", "class", "probability"}, ...]}."""
        path = output_dir / 'predictions.jsonl'
        with open(path, 'w', encoding='utf-8') as file:
            for item in items:
                file.write(json.dumps(item) + '\n')
        print(f"wrote {len(items)} predictions to {path}")
        return path
