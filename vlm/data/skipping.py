"""Skipping bad samples: a placeholder a dataset returns for a sample it could not read, and a counter by reason.

With `skip_bad_samples`, a dataset returns `SkippedSample` instead of raising `DataError`; the collate functions
drop it and count it in the batch, so the count crosses DataLoader worker processes; `BadSampleReport` adds the
counts up and reports them once per epoch.
"""
from __future__ import annotations

import logging
from collections import Counter
from typing import Any, Optional

from torch.utils.data import Dataset

from vlm.errors import DataError, SkippedSample, split_skipped

__all__ = ['SkipCounter', 'SkippedSample', 'SkipsBadSamples', 'split_skipped']

log = logging.getLogger(__name__)


class SkipsBadSamples(Dataset):
    """A dataset whose `read(i)` raises `DataError` for a bad sample (naming its file, record and field); with
    `skip_bad_samples` the item is a `SkippedSample` instead, which the collate functions drop and count. The one
    place that decides between the two: subclasses implement `read` and set `skip_bad_samples`."""

    skip_bad_samples: bool = False

    def read(self, i: int) -> Any:
        raise NotImplementedError

    def __getitem__(self, i: int) -> Any:
        try:
            return self.read(i)
        except DataError as error:
            if not self.skip_bad_samples:
                raise
            return SkippedSample.of(error)


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
