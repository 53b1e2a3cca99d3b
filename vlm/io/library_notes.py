"""A logging filter for notes that libraries log while they are imported and that tell a vlm user nothing, matched by
their format string, nothing else: torchao (>= 0.14) registers its Enums with torch's pytree when transformers
imports it, and torch logs a deprecation note for each. `import vlm` installs it before it imports transformers; the
`vlm` commands install it with their other filters (`vlm.cli.quiet`)."""
from __future__ import annotations

import logging
from typing import Dict, Tuple

# the start of each note's format string, per logger
NOISE_LIBRARY_LOGS: Dict[str, Tuple[str, ...]] = {
    'torch.utils._pytree': ('%s is an Enum subclass and is now natively supported by torch.compile',),
}


class DropFormats(logging.Filter):
    """Drops the records whose format string starts with one of `formats`."""

    def __init__(self, formats: Tuple[str, ...]) -> None:
        super().__init__()
        self.formats = formats

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.formats)


def drop_library_notes() -> None:
    """Install the filters (idempotent)."""
    for name, formats in NOISE_LIBRARY_LOGS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropFormats) for f in logger.filters):
            logger.addFilter(DropFormats(formats))
