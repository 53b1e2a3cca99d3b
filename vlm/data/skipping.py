"""Skipping bad samples: a placeholder a dataset returns for a sample it could not read, and a counter by reason.

With `skip_bad_samples`, a dataset returns `SkippedSample` instead of raising `DataError`; the collate functions
drop it and count it in the batch, so the count crosses DataLoader worker processes; `BadSampleReport` adds the
counts up and reports them once per epoch.
"""
from __future__ import annotations

import logging
from collections import Counter
from typing import Optional

from vlm.errors import DataError, SkippedSample, split_skipped

__all__ = ['SkipCounter', 'SkippedSample', 'split_skipped']

log = logging.getLogger(__name__)


class SkipCounter:
    """Counts samples skipped for bad input (by reason) while `skip_bad_samples` is on, and reports them."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()

    def add(self, error: DataError, n: int = 1) -> None:
        self.counts[error.field or 'record'] += n

    def merge(self, counts: Counter) -> None:
        self.counts.update(counts)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def report(self, what: str) -> Optional[str]:
        """Log one warning with the count (and reset); returns the message, None when nothing was skipped."""
        if not self.total:
            return None
        detail = ', '.join(f"{reason}: {n}" for reason, n in sorted(self.counts.items()))
        message = f"{what}: skipped {self.total} bad samples ({detail})"
        log.warning(message)
        self.counts.clear()
        return message
