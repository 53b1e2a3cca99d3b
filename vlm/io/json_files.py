"""The one JSON reader of vlm (annotations, results, ground truth): a missing or malformed file is a `DataError`
that names it."""
from __future__ import annotations

import json
import math
from numbers import Integral
from pathlib import Path
from typing import Any, Dict, Mapping, Sequence, Union

from vlm.errors import DataError, MissingFileError


def read_json(path: Union[str, Path], what: str = 'annotation') -> Any:
    """Parse a JSON file. Missing: `MissingFileError` ('{path}: {what} file not found'); not JSON: `DataError`."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, f'{what} file not found')
    try:
        with open(path, encoding='utf-8') as file:
            return json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(path, f'not valid JSON ({error})') from None


def require(record: Dict[str, Any], fields: Sequence[str], source: Union[str, Path], what: str) -> None:
    """Raise `DataError` for a record that is not a JSON object, or for the first of `fields` missing from it
    (`what` names the record)."""
    if not isinstance(record, dict):
        raise DataError(source, f'expected a JSON object, got {type(record).__name__} {str(record)[:60]!r}', record=what)
    for field in fields:
        if field not in record:
            raise DataError(source, 'missing required field', record=what, field=field)


def write_json(values: Mapping[str, float], path: Union[str, Path]) -> None:
    """Write metrics as a JSON object (NaN and infinity are not valid JSON and are refused)."""
    if any(isinstance(value, float) and not math.isfinite(value) for value in values.values()):
        raise ValueError(f'non-finite value in {dict(values)}')
    with open(path, 'w', encoding='utf-8') as file:
        json.dump(dict(values), file, indent=2)
        file.write('\n')


def is_id(value: Any) -> bool:
    """An integer id (Python or numpy, not bool), as COCO / VQA JSON ids must be."""
    return isinstance(value, Integral) and not isinstance(value, bool)
