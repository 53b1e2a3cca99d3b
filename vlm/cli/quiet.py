"""Silence what Lightning and its dependencies print on every run that tells a vlm user nothing (advertising tips,
notes about vlm's own deliberate choices, deprecations inside the libraries), filtered by message, nothing else."""
from __future__ import annotations

import logging
import re
import warnings

# rank-zero INFO lines of Lightning
NOISE_LOGS = (
    '💡 Tip:',  # litlogger / litmodels advertising
    'The following callbacks returned in `LightningModule.configure_callbacks`',  # vlm's checkpoints, on purpose
    'Loading `train_dataloader` to estimate number of stepping batches',
)
# warnings that torch logs, by the start of their format string, per logger
NOISE_LIBRARY_LOGS = {
    # torchao >= 0.14 registers its Enums with torch's pytree when transformers imports it (its quantizers)
    'torch.utils._pytree': ('%s is an Enum subclass and is now natively supported by torch.compile',),
}
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


class _DropFormats(logging.Filter):
    def __init__(self, formats: tuple) -> None:
        super().__init__()
        self.formats = formats

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.formats)


def quiet() -> None:
    """Install the filters (idempotent)."""
    for name in ('lightning.pytorch.utilities.rank_zero', 'lightning.fabric.utilities.rank_zero'):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) for f in logger.filters):
            logger.addFilter(_DropNoise())
    for name, formats in NOISE_LIBRARY_LOGS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropFormats) for f in logger.filters):
            logger.addFilter(_DropFormats(formats))
    for message in NOISE_WARNINGS:
        warnings.filterwarnings('ignore', message=message)
