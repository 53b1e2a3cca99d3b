"""What every vlm task shares: timm's optimizer factory with layer-wise lr decay, a per-step warmup + cosine
schedule (timm's, which honours each group's lr_scale), default callbacks, a checkpoint shape check, and
`torch.compile` of the encoder."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Union

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from timm.scheduler.scheduler import Scheduler

from vlm.data.skip_report import BadSampleReport
from vlm.encoder.weights import CheckpointShapeError, shape_mismatches


def compile_blocks(encoder: torch.nn.Module, **options: Any) -> None:
    """`torch.compile` every transformer block of `encoder` in place (regional compilation; `options` go to
    `torch.compile`). The identical blocks share one compiled graph, so compiling costs about one block, and
    the blocks run compiled whatever entry point the task calls: `forward` (classification) or timm's
    `forward_intermediates` (`dense_features`: detection, segmentation, the VLM), which whole-module
    `encoder.compile()` would leave eager. The state dict is unchanged. Blocks already compiled are left as
    they are."""
    for block in encoder.blocks:
        if getattr(block, '_compiled_call_impl', None) is None:
            block.compile(**options)


class VlmTask(L.LightningModule):
    """Base LightningModule. Subclasses set `monitor` (their main metric, higher is better), build
    `self.model`, and may override `optimizer_model()` or `param_groups()`.

    optimizer: any timm optimizer name ('adamw', 'lamb', 'sgd', ...). layer_decay: timm's layer-wise lr decay
    (lr of block i scaled by layer_decay ** (depth - i)); None for a flat lr. warmup_epochs: linear warmup,
    then cosine down to min_lr, stepped every optimizer step.
    compile_encoder: `torch.compile` the encoder's blocks (`compile_blocks`) in place at `setup`: True for the
    defaults, or a dict of `torch.compile` keywords (e.g. {backend: inductor, mode: max-autotune}). The state
    dict keys are unchanged, so checkpoints load into compiled and eager models alike.
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
            compile_encoder: Union[bool, Dict[str, Any]] = False,
    ) -> None:
        super().__init__()
        self.optimizer_name, self.lr, self.weight_decay = optimizer, lr, weight_decay
        self.layer_decay, self.warmup_epochs, self.min_lr = layer_decay, warmup_epochs, min_lr
        self.compile_encoder = compile_encoder

    # -- the encoder -------------------------------------------------------------------------------------------

    def encoder_module(self) -> Optional[torch.nn.Module]:
        """The task's image encoder: the first submodule that is a ViT (has `patch_embed` and `blocks`), e.g.
        `model` (classification: encoder and its head), `model.backbone.encoder` (detection),
        `backbone.encoder` (segmentation), `model.encoder` (vision-language). None before the model is built."""
        for _, module in self.named_modules():
            if hasattr(module, 'patch_embed') and hasattr(module, 'blocks'):
                return module
        return None

    def setup(self, stage: str) -> None:
        """Compile the encoder when asked (a task that builds its model later calls `maybe_compile_encoder`)."""
        self.maybe_compile_encoder()

    def maybe_compile_encoder(self) -> bool:
        """Apply `compile_encoder` to the encoder's blocks (`compile_blocks`), once; returns whether it did."""
        encoder = self.encoder_module()
        if not self.compile_encoder or encoder is None:
            return False
        compile_blocks(encoder, **(self.compile_encoder if isinstance(self.compile_encoder, dict) else {}))
        return True

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
        """Checkpoints: the best by the task's main metric, and `last.ckpt`, the latest state, rewritten at every
        save (a second ModelCheckpoint: since Lightning 2.6 `save_last` writes only when a best one is saved, so
        `last.ckpt` would lag behind an epoch that did not improve); bad-sample counts per epoch."""
        return [
            ModelCheckpoint(
                monitor=self.monitor, mode=self.monitor_mode, save_top_k=1,
                filename='best-epoch{epoch:03d}', auto_insert_metric_name=False),
            ModelCheckpoint(filename=ModelCheckpoint.CHECKPOINT_NAME_LAST, save_top_k=1, enable_version_counter=False),
            BadSampleReport(),
        ]

    def on_load_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        """Refuse a checkpoint whose tensors do not fit this model, naming each tensor and both shapes."""
        mismatched = shape_mismatches(checkpoint.get('state_dict', {}), self.state_dict())
        if mismatched:
            raise CheckpointShapeError(
                "checkpoint does not fit this model (was it trained with another num_classes or encoder?):\n  "
                + '\n  '.join(mismatched))
