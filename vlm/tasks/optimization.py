"""How every task optimises: timm's optimizer factory (any timm optimizer, layer-wise lr decay) and a per-step
warmup + cosine or poly schedule (timm's schedulers, which honour each parameter group's lr_scale)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Dict, Mapping, Optional, Union

import torch
from timm.models import group_parameters
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler, PolyLRScheduler
from timm.scheduler.scheduler import Scheduler
from torch import nn

SCHEDULES = ('cosine', 'poly')


@dataclass(frozen=True)
class Optimization:
    """How a task optimises; a field left None takes the task's default (`VlmTask.default_optimization`), so a
    config names only what it changes.

    optimizer: any timm optimizer name ('adamw', 'lamb', 'sgd', ...). lr / weight_decay: as timm's.
    layer_decay: timm's layer-wise lr decay (block i of the encoder: lr * layer_decay ** (depth - i)); 0 or None
    for a flat lr. warmup_epochs: linear warmup from lr / 1000 over that many epochs' optimizer steps (counted from
    the training loader's length, so a `max_steps` run warms up as long as a `max_epochs` one), or warmup_steps
    steps when given; then `schedule`: 'cosine' down to min_lr at the run's last step, or 'poly' (power
    `poly_power`, mmsegmentation's ADE20K choice)."""

    optimizer: Optional[str] = None
    lr: Optional[float] = None
    weight_decay: Optional[float] = None
    layer_decay: Optional[float] = None
    warmup_epochs: Optional[float] = None
    warmup_steps: Optional[int] = None
    min_lr: Optional[float] = None
    schedule: Optional[str] = None
    poly_power: Optional[float] = None

    def __post_init__(self) -> None:
        if self.schedule is not None and self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ValueError(f'warmup_steps must be >= 0, got {self.warmup_steps}')

    @classmethod
    def of(cls, value: Union['Optimization', Mapping[str, Any], None], default: 'Optimization') -> 'Optimization':
        """`default` updated by the fields `value` sets (an Optimization, or a mapping of its fields as a
        checkpoint stores it)."""
        if value is None:
            return default
        given = value.as_dict() if isinstance(value, Optimization) else dict(value)
        unknown = set(given) - set(asdict(default))
        if unknown:
            raise ValueError(f'unknown optimization settings {sorted(unknown)}; known: {sorted(asdict(default))}')
        return replace(default, **{key: item for key, item in given.items() if item is not None})

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


DEFAULT_OPTIMIZATION = Optimization(optimizer='adamw', lr=1e-3, weight_decay=0.05, layer_decay=None,
                                    warmup_epochs=1.0, min_lr=1e-6, schedule='cosine', poly_power=1.0)


def create_optimizer(params: Any, settings: Optimization) -> torch.optim.Optimizer:
    """timm's optimizer factory: `params` is a module (layer decay from its `group_matcher`, no weight decay on
    1-D tensors) or a list of parameter groups."""
    return create_optimizer_v2(params, opt=settings.optimizer, lr=settings.lr, weight_decay=settings.weight_decay,
                               layer_decay=settings.layer_decay or None)


def warmup_length(settings: Optimization, steps_per_epoch: float, total_steps: int) -> int:
    """Warmup in optimizer steps: `warmup_steps`, else `warmup_epochs` x the optimizer steps of one epoch; never more
    than the run."""
    steps = settings.warmup_steps if settings.warmup_steps is not None else (settings.warmup_epochs or 0.0) * steps_per_epoch
    return min(int(round(steps)), total_steps)


def create_scheduler(optimizer: torch.optim.Optimizer, settings: Optimization, total_steps: int,
                     warmup_steps: int) -> Scheduler:
    """Linear warmup from lr / 1000 for `warmup_steps`, then cosine or poly decay to min_lr at `total_steps`."""
    common = dict(t_initial=total_steps, lr_min=settings.min_lr, warmup_t=warmup_steps,
                  warmup_lr_init=settings.lr * 1e-3, t_in_epochs=False)
    if settings.schedule == 'poly':
        return PolyLRScheduler(optimizer, power=settings.poly_power, **common)
    return CosineLRScheduler(optimizer, **common)


def encoder_layer_matcher(encoder: nn.Module, prefix: str) -> Callable[[str], int]:
    """A timm `group_matcher` for a model holding `encoder` under `prefix` (e.g. 'model.backbone.encoder.').

    Encoder parameters keep timm's grouping of the encoder alone (stem 0, block i -> i + 1, the final norm with
    the last block, parameters timm does not group, e.g. learnable RoPE frequencies, on top); every other
    parameter (pyramid, heads) joins the top group. With timm's layer-wise lr decay block i gets
    decay ** (depth - i) and the pyramid and heads the full lr, as in ViTDet.
    """
    layers = group_parameters(encoder, encoder.group_matcher(coarse=False), reverse=True)  # name -> layer id
    top = max(layers.values())
    return lambda name: layers.get(name[len(prefix):], top) if name.startswith(prefix) else top
