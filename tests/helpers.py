"""Helpers the tests hand to `vlm` through configs (importable as `tests.helpers`)."""
import os
import signal
from pathlib import Path

import lightning as L


class KillAtStep(L.Callback):
    """SIGKILLs the training process when `global_step` reaches `step` (once: a marker file records it)."""

    def __init__(self, step: int, marker: str) -> None:
        self.step, self.marker = step, Path(marker)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step >= self.step and not self.marker.exists():
            self.marker.write_text(str(trainer.global_step))
            os.kill(os.getpid(), signal.SIGKILL)


class RecordStart(L.Callback):
    """Writes, when training starts, the global step and the optimizer's own step count (AdamW's `step` of its
    first parameter): what a resumed run restored."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_start(self, trainer, pl_module) -> None:
        import json

        state = trainer.optimizers[0].state
        steps = [float(value['step']) for value in state.values() if 'step' in value]
        self.path.write_text(json.dumps({'global_step': trainer.global_step, 'epoch': trainer.current_epoch,
                                         'optimizer_step': steps[0] if steps else 0.0}))
