"""What every vlm task shares: the optimizer and schedule (`Optimization`), default callbacks, checkpoint checks
and migration, and `torch.compile` of the encoder. Tasks hold Lightning concerns only; their models are plain
modules built by `vlm.models`, `vlm.encoder` or `vlm.language`."""
from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from timm.scheduler.scheduler import Scheduler

from vlm.data.skip_report import BadSampleReport
from vlm.encoder.weights import shape_mismatches
from vlm.errors import CheckpointShapeError
from vlm.io.checkpoints import read_checkpoint

from .checkpoint_migration import CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_KEY, migrate_hparams, migrate_state_dict
from .optimization import (
    DEFAULT_OPTIMIZATION,
    Optimization,
    create_optimizer,
    create_scheduler,
    encoder_layer_matcher,
    warmup_length,
)

CompileOptions = Union[bool, Dict[str, Any]]
RNG_KEY = 'vlm_rng_state'


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
    """Base LightningModule. Subclasses set `monitor` (their main metric), `default_optimization`, and build
    `self.model`; they may override `optimizer_params()`.

    optimization: the optimizer and schedule (`Optimization`: optimizer, lr, weight_decay, layer_decay,
    warmup_epochs, min_lr, schedule, poly_power); None for the task's `default_optimization`.
    compile_encoder: `torch.compile` the encoder's blocks (`compile_blocks`) in place at `setup`: True for the
    defaults, or a dict of `torch.compile` keywords (e.g. {backend: inductor, mode: max-autotune}). The state
    dict keys are unchanged, so checkpoints load into compiled and eager models alike.
    """

    monitor: str = 'val/loss'
    monitor_mode: str = 'max'
    default_optimization = DEFAULT_OPTIMIZATION
    state_dict_renames: Mapping[str, str] = {}  # old key prefix -> new, for checkpoints of vlm 0.1
    encoder_path: str = 'model'  # where the task keeps its image encoder (a submodule path); each task names its own

    def __init__(self, optimization: Optional[Optimization] = None, compile_encoder: CompileOptions = False) -> None:
        super().__init__()
        self.optimization = Optimization.of(optimization, self.default_optimization)
        self.compile_encoder = compile_encoder

    def save_task_hyperparameters(self, ignore: Optional[List[str]] = None) -> None:
        """`save_hyperparameters` of the subclass's arguments, settings objects (`Optimization`, ...) as plain
        dicts (a checkpoint must load with `weights_only=True`)."""
        self.save_hyperparameters(ignore=ignore, frame=_caller_frame())
        self.hparams['optimization'] = self.optimization.as_dict()
        for key, value in self.hparams.items():
            if dataclasses.is_dataclass(value):
                self.hparams[key] = value.as_dict() if hasattr(value, 'as_dict') else dataclasses.asdict(value)

    # -- the encoder -------------------------------------------------------------------------------------------

    def encoder_module(self) -> Optional[torch.nn.Module]:
        """The task's image encoder, the submodule at `encoder_path` (a LoRA-wrapped encoder: the ViT inside peft's
        wrapper). None before the model is built."""
        found = self._encoder_and_prefix()
        return found[0] if found else None

    def _encoder_and_prefix(self) -> Optional[Tuple[torch.nn.Module, str]]:
        try:
            module = self.get_submodule(self.encoder_path)
        except AttributeError:  # the model is built later (VisionLanguageTask builds it at setup)
            return None
        prefix = f'{self.encoder_path}.' if self.encoder_path else ''
        if callable(getattr(module, 'get_base_model', None)):  # peft's PeftModel around the encoder (LoRA)
            base = module.get_base_model()
            inner = next(name for name, child in module.named_modules() if child is base)
            module, prefix = base, f'{prefix}{inner}.'
        return module, prefix

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

    # -- optimisation ------------------------------------------------------------------------------------------

    def optimizer_params(self) -> Any:
        """What timm's optimizer factory gets: this module (layer decay from `group_matcher`, no decay on 1-D
        tensors), or a task's own list of parameter groups (each may set its 'lr'; the schedule scales every group
        alike)."""
        return self

    def group_matcher(self, coarse: bool = False) -> Callable[[str], int]:
        """Layers for timm's layer-wise lr decay: the encoder's blocks in timm's order; every other parameter
        (classifier, pyramid, heads) at the top, with the full lr (`encoder_layer_matcher`)."""
        encoder, prefix = self._encoder_and_prefix()
        return encoder_layer_matcher(encoder, prefix)

    def no_weight_decay(self) -> set:
        """The encoder's own no-decay parameters (class token, position embeddings, RoPE frequencies)."""
        encoder, prefix = self._encoder_and_prefix()
        return {f'{prefix}{name}' for name in encoder.no_weight_decay()}

    def configure_optimizers(self) -> Dict[str, Any]:
        optimizer = create_optimizer(self.optimizer_params(), self.optimization)
        total_steps = max(int(self.trainer.estimated_stepping_batches), 1)
        scheduler = create_scheduler(optimizer, self.optimization, total_steps,
                                     warmup_length(self.optimization, self.steps_per_epoch(total_steps), total_steps))
        return {'optimizer': optimizer, 'lr_scheduler': {'scheduler': scheduler, 'interval': 'step'}}

    def steps_per_epoch(self, total_steps: int) -> float:
        """Optimizer steps in one epoch: the training loader's batches (known once `estimated_stepping_batches` has
        set the loader up) over the gradient accumulation; the whole run's steps over max_epochs when the loader has
        no length."""
        trainer = self.trainer
        if trainer.train_dataloader is None:  # `estimated_stepping_batches` skips it when max_epochs is -1
            trainer.fit_loop.setup_data()
        batches = trainer.num_training_batches
        if isinstance(batches, (int, float)) and math.isfinite(batches) and batches > 0:
            return batches / max(trainer.accumulate_grad_batches, 1)
        return total_steps / max(trainer.max_epochs or 1, 1)

    def lr_scheduler_step(self, scheduler: Scheduler, metric: Any) -> None:
        scheduler.step_update(num_updates=self.global_step)

    # -- checkpoints -------------------------------------------------------------------------------------------

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

    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        """The format version, and the random state of the main process (dropout, drop path, Mixup), so that a
        resumed run continues as the uninterrupted one would (the loaders' randomness is a function of the epoch)."""
        checkpoint[CHECKPOINT_FORMAT_KEY] = CHECKPOINT_FORMAT
        checkpoint[RNG_KEY] = {'torch': torch.get_rng_state(), 'python': random.getstate()}

    def on_train_start(self) -> None:
        """On a resume, start the training batches anew: Lightning created their iterator while estimating the
        schedule's length (`estimated_stepping_batches`), before the checkpoint restored the epoch, so it would
        replay epoch 0's order instead of the resumed epoch's (`vlm.data.sampling.EpochShuffle`)."""
        fit_loop = self.trainer.fit_loop
        fetcher = getattr(fit_loop, '_data_fetcher', None)
        if fit_loop.is_resuming and fetcher is not None:
            iter(fetcher)

    def on_train_epoch_start(self) -> None:
        pending = getattr(self, '_restored_rng', None)
        if pending is not None:  # the first epoch after a resume draws what the uninterrupted run would have
            torch.set_rng_state(pending['torch'])
            random.setstate(pending['python'])
            self._restored_rng = None

    def on_load_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        """Rename the keys of a vlm 0.1 checkpoint, then refuse tensors that do not fit this model, naming each
        tensor and both shapes."""
        self._restored_rng = checkpoint.get(RNG_KEY)
        if checkpoint.get(CHECKPOINT_FORMAT_KEY, 1) < CHECKPOINT_FORMAT and self.state_dict_renames:
            checkpoint['state_dict'] = migrate_state_dict(checkpoint.get('state_dict', {}), self.state_dict_renames)
        mismatched = shape_mismatches(checkpoint.get('state_dict', {}), self.state_dict())
        if mismatched:
            raise CheckpointShapeError(
                "checkpoint does not fit this model (was it trained with another num_classes or encoder?):\n  "
                + '\n  '.join(mismatched))

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Union[str, Path], map_location: Any = 'cpu', strict: bool = True,
                             **overrides: Any) -> 'VlmTask':
        """The task stored in a checkpoint of `vlm fit`, read with `weights_only=True` (a checkpoint is never
        executed); the stored hyperparameters, migrated from older vlm versions and updated by `overrides`, build
        the task, then the weights are loaded (`strict`)."""
        overrides.pop('weights_only', None)  # always True
        return cls.from_checkpoint(read_checkpoint(checkpoint_path, map_location), strict, **overrides)

    @classmethod
    def from_checkpoint(cls, checkpoint: Dict[str, Any], strict: bool = True, **overrides: Any) -> 'VlmTask':
        """The task of an already read checkpoint (see `load_from_checkpoint`)."""
        task = cls(**{**migrate_hparams(checkpoint.get('hyper_parameters', {})), **overrides})
        task.on_load_checkpoint(checkpoint)
        task.load_state_dict(checkpoint['state_dict'], strict=strict)
        return task


def _caller_frame():
    """The frame of the subclass `__init__` that called `save_task_hyperparameters`."""
    import inspect

    return inspect.currentframe().f_back.f_back
