"""The error types every vlm package raises for bad input: each names the file, record and field at fault, so the
`vlm` command prints one line instead of a traceback."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple, Union


class DataError(ValueError):
    """A sample, annotation or file that cannot be used, with where it came from.

    source: the file (image, annotation JSON, label map, checkpoint) at fault.
    record: the record inside it, e.g. 'annotation id 17' or 'image id 4'.
    field: the field at fault, e.g. 'bbox', 'category_id', 'file_name'.
    """

    def __init__(self, source: Union[str, object], reason: Optional[str] = None, record: Optional[str] = None,
                 field: Optional[str] = None) -> None:
        self.source, self.reason, self.record, self.field = str(source), reason, record, field
        if reason is None:  # one whole message, as a DataLoader worker's exception is re-raised with
            super().__init__(self.source)
            return
        where = self.source + (f", {record}" if record else '') + (f", field '{field}'" if field else '')
        super().__init__(f"{where}: {reason}")


class MissingFileError(DataError, FileNotFoundError):
    """A file that is not there (a `DataError` and a `FileNotFoundError`)."""


def one_line(error: BaseException) -> str:
    """The message of a vlm error as the `vlm` command prints it: for an error raised in a DataLoader worker
    (re-raised by torch with the worker's whole traceback in its message) the original error's own message."""
    message = str(error)
    if 'Original Traceback' not in message:
        return message
    last = [line for line in message.strip().splitlines() if line.strip()][-1]
    kind, separator, text = last.partition(': ')
    return text if separator and (kind.endswith('Error') or '.' in kind) else last


def vlm_error_behind(error: BaseException) -> Optional[BaseException]:
    """The first vlm error (`DataError`, `InputError`, `CheckpointShapeError`) in the chain of causes of `error`
    (e.g. behind the ValueError jsonargparse raises when a class it instantiates refuses its arguments), or None."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (DataError, InputError, CheckpointShapeError)):
            return error
        error = error.__cause__ or error.__context__
    return None


class InputError(ValueError):
    """Bad input that is not a file's fault (an empty question, a prompt longer than the context, images that do
    not match their placeholders, a bad option value): the `vlm` command prints its message alone."""


class CheckpointShapeError(ValueError):
    """A checkpoint whose tensors do not fit the model (names each tensor and both shapes), or whose contents
    belong to another kind of model."""


@dataclass(frozen=True)
class SkippedSample:
    """Returned by a dataset in place of a bad sample when `skip_bad_samples` is on; the collate function drops
    it and counts it by `reason` (the field at fault), so the count survives dataloader worker processes."""

    reason: str
    message: str

    @classmethod
    def of(cls, error: DataError) -> 'SkippedSample':
        return cls(reason=error.field or 'sample', message=str(error))


def split_skipped(batch: Sequence[Any]) -> Tuple[List[Any], Counter]:
    """The usable items of a batch, and the skipped ones counted by reason."""
    skipped = Counter(item.reason for item in batch if isinstance(item, SkippedSample))
    return [item for item in batch if not isinstance(item, SkippedSample)], skipped
