"""Bad input: one exception type that names the file, record and field, and a counter for skipped samples."""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Optional, Union

log = logging.getLogger(__name__)


class DataError(ValueError):
    """A sample or annotation that cannot be used, with where it came from.

    source: the file (image, annotation JSON, label map) at fault.
    record: the record inside it, e.g. 'annotation id 17' or 'image id 4'.
    field: the field at fault, e.g. 'bbox', 'category_id', 'file_name'.
    """

    def __init__(self, source: Union[str, object], reason: str, record: Optional[str] = None,
                 field: Optional[str] = None) -> None:
        self.source, self.reason, self.record, self.field = str(source), reason, record, field
        where = self.source + (f", {record}" if record else '') + (f", field '{field}'" if field else '')
        super().__init__(f"{where}: {reason}")


class InputError(ValueError):
    """Bad input that is not a file's fault (an empty question, a prompt longer than the context, images that do
    not match their placeholders): the `vlm` command prints its message alone."""


@dataclass(frozen=True)
class SkippedSample:
    """Returned by a dataset in place of a bad sample when `skip_bad_samples` is on; the collate function drops
    it and counts it by `reason` (the field at fault), so the count survives dataloader worker processes."""

    reason: str
    message: str

    @classmethod
    def of(cls, error: DataError) -> 'SkippedSample':
        return cls(reason=error.field or 'sample', message=str(error))


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
