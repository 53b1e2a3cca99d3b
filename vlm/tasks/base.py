"""What every vlm task shares: timm's optimizer factory with layer-wise lr decay, a per-step warmup + cosine
schedule (timm's, which honours each group's lr_scale), default callbacks, and a checkpoint shape check."""
from __future__ import annotations

from typing import Any, Dict, List

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from timm.scheduler.scheduler import Scheduler

from vlm.data.skip_report import BadSampleReport
from vlm.encoder.weights import CheckpointShapeError, shape_mismatches


class VlmTask(L.LightningModule):
    """Base LightningModule. Subclasses set `monitor` (their main metric, higher is better), build
    `self.model`, and may override `optimizer_model()` or `param_groups()`.

    optimizer: any timm optimizer name ('adamw', 'lamb', 'sgd', ...). layer_decay: timm's layer-wise lr decay
    (lr of block i scaled by layer_decay ** (depth - i)); None for a flat lr. warmup_epochs: linear warmup,
    then cosine down to min_lr, stepped every optimizer step.
    """

    monitor: str = 'val/loss'
    monitor_mode: str = 'max'

    def __init__(
            self,
            optimizer: str = 'adamw',
            lr: float = 1e-3,
            weight_decay: float = 0.05,
            layer_decay: float | None = None,
            warmup_epochs: float = 1.0,
            min_lr: float = 1e-6,
    ) -> None:
        super().__init__()
        self.optimizer_name, self.lr, self.weight_decay = optimizer, lr, weight_decay
        self.layer_decay, self.warmup_epochs, self.min_lr = layer_decay, warmup_epochs, min_lr

    def optimizer_model(self) -> torch.nn.Module:
        """The module whose parameters are optimised (timm's layer decay reads its `group_matcher`)."""
        return self.model

    def optimizer_params(self) -> Any:
        """What timm's optimizer factory gets: `optimizer_model()` (layer decay, no decay on 1-D tensors), or a
        task's own list of parameter groups (each may set its 'lr'; the schedule scales every group alike)."""
        return self.optimizer_model()

    def configure_optimizers(self) -> Dict[str, Any]:
        optimizer = create_optimizer_v2(
            self.optimizer_params(), opt=self.optimizer_name, lr=self.lr, weight_decay=self.weight_decay,
            layer_decay=self.layer_decay)
        total_steps = max(int(self.trainer.estimated_stepping_batches), 1)
        steps_per_epoch = total_steps / max(self.trainer.max_epochs or 1, 1)
        scheduler = self.build_lr_scheduler(optimizer, total_steps, int(self.warmup_epochs * steps_per_epoch))
        return {'optimizer': optimizer, 'lr_scheduler': {'scheduler': scheduler, 'interval': 'step'}}

    def build_lr_scheduler(self, optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int) -> Scheduler:
        """Linear warmup from lr / 1000, then cosine down to min_lr at `total_steps` (a task may override)."""
        return CosineLRScheduler(
            optimizer,
            t_initial=total_steps,
            lr_min=self.min_lr,
            warmup_t=warmup_steps,
            warmup_lr_init=self.lr * 1e-3,
            t_in_epochs=False,
        )

    def lr_scheduler_step(self, scheduler: Scheduler, metric: Any) -> None:
        scheduler.step_update(num_updates=self.global_step)

    def configure_callbacks(self) -> List[L.Callback]:
        """Checkpoints: `last.ckpt` and the best by the task's main metric; bad-sample counts per epoch."""
        return [
            ModelCheckpoint(
                monitor=self.monitor, mode=self.monitor_mode, save_last=True, save_top_k=1,
                filename='best-epoch{epoch:03d}', auto_insert_metric_name=False),
            BadSampleReport(),
        ]

    def on_load_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        """Refuse a checkpoint whose tensors do not fit this model, naming each tensor and both shapes."""
        mismatched = shape_mismatches(checkpoint.get('state_dict', {}), self.state_dict())
        if mismatched:
            raise CheckpointShapeError(
                "checkpoint does not fit this model (was it trained with another num_classes or encoder?):\n  "
                + '\n  '.join(mismatched))
