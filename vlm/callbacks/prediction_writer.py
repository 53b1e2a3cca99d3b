"""Writes what `vlm predict` returns, through each task's own `write_predictions`."""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Sequence

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter

from vlm.tasks.interfaces import WritesPredictions


class PredictionWriter(BasePredictionWriter):
    """At the end of `predict`, hands the flattened predictions to `pl_module.write_predictions(items, out_dir)`.

    output_dir: where to write; default `<log_dir>/predictions`. Each rank writes its own share
    (`rank{r}` subfolder) when there are several.
    """

    def __init__(self, output_dir: Optional[str] = None) -> None:
        super().__init__(write_interval='epoch')
        self.output_dir = output_dir

    def write_on_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, predictions: Sequence[Any],
                           batch_indices: Optional[Sequence[Any]]) -> None:
        if not isinstance(pl_module, WritesPredictions):
            return
        out = Path(self.output_dir or Path(trainer.log_dir or 'runs') / 'predictions')
        if trainer.world_size > 1:
            out = out / f'rank{trainer.global_rank}'
        out.mkdir(parents=True, exist_ok=True)
        batches = predictions  # one dataloader: [batch outputs]; several: [[batch outputs] per loader]
        if predictions and predictions[0] and isinstance(predictions[0][0], list):
            batches = [batch for loader in predictions for batch in loader]
        items: List[Any] = [item for batch in batches for item in batch]
        pl_module.write_predictions(items, out)
