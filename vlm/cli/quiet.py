"""Silence what Lightning and its dependencies print on every run that tells a vlm user nothing (advertising tips,
notes about vlm's own deliberate choices, deprecations inside the libraries), filtered by message, nothing else."""
from __future__ import annotations

import logging
import re
import warnings

from vlm.io.library_notes import drop_library_notes

# rank-zero INFO lines of Lightning
NOISE_LOGS = (
    '💡 Tip:',  # litlogger / litmodels advertising
    'The following callbacks returned in `LightningModule.configure_callbacks`',  # vlm's checkpoints, on purpose
    'Loading `train_dataloader` to estimate number of stepping batches',
)
# warnings, by the start of their message (regular expressions)
NOISE_WARNINGS = (
    re.escape("LightningCLI's args parameter is intended to run from within Python"),  # vlm passes its argv
    re.escape('`isinstance(treespec, LeafSpec)` is deprecated'),  # inside Lightning, torch >= 2.9
    re.escape('Precision bf16-mixed is not supported by the model summary'),
    r'Found \d+ module\(s\) in eval mode',  # frozen parts of the vision-language model, on purpose
    re.escape('`is_gradient_checkpointing` is deprecated'),  # inside transformers
)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(NOISE_LOGS)


def quiet() -> None:
    """Install the filters (idempotent)."""
    for name in ('lightning.pytorch.utilities.rank_zero', 'lightning.fabric.utilities.rank_zero'):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) for f in logger.filters):
            logger.addFilter(_DropNoise())
    drop_library_notes()  # torch's notes about torchao's Enums (vlm.io.library_notes)
    for message in NOISE_WARNINGS:
        warnings.filterwarnings('ignore', message=message)
