"""`WallClock`: log the seconds since fit started, so learning curves can be drawn against wall time."""
from __future__ import annotations

import time
from typing import Any, Optional

from lightning.pytorch import Callback, LightningModule, Trainer


class WallClock(Callback):
    """Logs `time/wall_s` (seconds since `fit` started; a resumed run continues from the checkpoint's count) with
    every training log row and at the end of every validation."""

    def __init__(self) -> None:
        self.start: Optional[float] = None
        self.before = 0.0  # seconds of the run before a resume

    def elapsed(self) -> float:
        return self.before + (time.perf_counter() - self.start if self.start is not None else 0.0)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        pl_module.log('time/wall_s', self.elapsed(), on_step=True, on_epoch=False)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            pl_module.log('time/wall_s', self.elapsed())

    def state_dict(self) -> dict:
        return {'elapsed': self.elapsed()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.before = float(state_dict.get('elapsed', 0.0))
