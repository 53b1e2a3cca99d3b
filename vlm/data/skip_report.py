"""A Lightning callback that reports, once per epoch, how many bad samples the loaders skipped."""
from __future__ import annotations

from typing import Any, Dict

import lightning as L

from .skipping import SkipCounter


class BadSampleReport(L.Callback):
    """Adds up `batch['skipped']` (a Counter by reason, filled by vlm's collate functions) and logs one warning
    with the totals at the end of each train / validation / test epoch; also logs the count as a metric."""

    def __init__(self) -> None:
        self.counters: Dict[str, SkipCounter] = {'train': SkipCounter(), 'val': SkipCounter(), 'test': SkipCounter()}

    def _add(self, stage: str, batch: Any) -> None:
        if isinstance(batch, dict) and batch.get('skipped'):
            self.counters[stage].merge(batch['skipped'])

    def _report(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        total = self.counters[stage].total
        if self.counters[stage].report(f"{stage} epoch {trainer.current_epoch}") is not None:
            pl_module.log(f'{stage}/skipped_samples', float(total), reduce_fx='sum', sync_dist=True)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._add('train', batch)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._add('val', batch)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._add('test', batch)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._report('train', trainer, pl_module)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self._report('val', trainer, pl_module)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._report('test', trainer, pl_module)
