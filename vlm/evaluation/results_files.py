"""Results files of generated texts: COCO caption results `[{"image_id", "caption"}]` and VQAv2 results
`[{"question_id", "answer"}]`, built from model outputs and read back with every record checked."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from vlm.errors import DataError
from vlm.io.json_files import is_id, read_json, require


def as_id(value: Any, what: str, index: int) -> int:
    if hasattr(value, 'item') and getattr(value, 'ndim', 0) == 0:  # a 0-d tensor or numpy scalar
        value = value.item()
    if not is_id(value):
        raise ValueError(f"{what}[{index}] is not an integer id: {value!r}")
    return int(value)


def id_text_results(ids: Sequence[Any], texts: Sequence[str], id_key: str, text_key: str) -> List[Dict[str, Any]]:
    """Results records `[{id_key: int, text_key: str}, ...]` from parallel sequences; ids may be ints, numpy or
    0-d tensors (the shared builder of caption and VQA results)."""
    id_name, plural = id_key.replace('_', ' '), f'{text_key}s'
    if len(ids) != len(texts):
        raise ValueError(f'{len(ids)} {id_name}s but {len(texts)} {plural}')
    records = []
    for index, (key, text) in enumerate(zip(ids, texts)):
        if not isinstance(text, str):
            raise ValueError(f'{plural}[{index}] is not a string: {text!r}')
        records.append({id_key: as_id(key, f'{id_key}s', index), text_key: text})
    return records


def caption_results(image_ids: Sequence[Any], captions: Sequence[str]) -> List[Dict[str, Any]]:
    """COCO caption results records `[{'image_id': int, 'caption': str}, ...]` (the format of
    `vlm evaluate-captions --predictions`)."""
    return id_text_results(image_ids, captions, 'image_id', 'caption')


def read_id_text_results(path: Union[str, Path], id_key: str, text_key: str,
                         known_ids: Optional[Mapping[int, Any]] = None,
                         unknown_reason: str = 'unknown id') -> Dict[int, str]:
    """A results JSON `[{id_key: int, text_key: str}, ...]` as id -> text (the shared reader of caption and VQA
    results). A record that is not an object, lacks a field, repeats an id, has a non-string text or (given
    `known_ids`) an id not in `known_ids` (reported with `unknown_reason`) raises `DataError` naming the file, the
    record (`results[1] (image_id=999)`) and the field."""
    id_name = id_key.replace('_', ' ')  # 'image_id' -> 'image id' in the messages
    path, data = Path(path), read_json(path, 'results')
    if not isinstance(data, list):
        raise DataError(path, f'expected a JSON list of {{"{id_key}", "{text_key}"}} records')
    results: Dict[int, str] = {}
    first: Dict[int, int] = {}
    for index, result in enumerate(data):
        record = f'results[{index}]'
        if not isinstance(result, dict):
            raise DataError(path, f'expected an object, got {result!r}'[:120], record=record)
        if id_key in result:
            record += f" ({id_key}={result[id_key]!r})"
        require(result, (id_key, text_key), path, record)
        key, text = result[id_key], result[text_key]
        if not is_id(key):
            raise DataError(path, f'{id_name} is not an integer: {key!r}', record=record, field=id_key)
        if key in first:
            raise DataError(path, f'duplicate {id_name}, first at results[{first[key]}]', record=record,
                            field=id_key)
        if known_ids is not None and key not in known_ids:
            raise DataError(path, unknown_reason, record=record, field=id_key)
        if not isinstance(text, str):
            raise DataError(path, f'{text_key} is not a string: {text!r}', record=record, field=text_key)
        first[key] = index
        results[key] = text
    return results


def read_caption_results(path: Union[str, Path],
                         references: Optional[Mapping[int, Any]] = None) -> Dict[int, str]:
    """A COCO caption results JSON `[{"image_id": int, "caption": str}, ...]` as image id -> caption. A record
    that is not an object, lacks a field, repeats an image id, has a non-string caption or (given `references`)
    an image id without references raises `DataError` naming the file and the record."""
    return read_id_text_results(path, 'image_id', 'caption', references,
                                'not the id of an image with reference captions in the ground truth')



def vqa_results(question_ids: Sequence[Any], answers: Sequence[str]) -> List[Dict[str, Any]]:
    """VQAv2 results records `[{'question_id': int, 'answer': str}, ...]` (the format of `vlm evaluate-vqa
    --predictions`)."""
    return id_text_results(question_ids, answers, 'question_id', 'answer')


def read_vqa_results(path: Union[str, Path], answers: Optional[Mapping[int, Any]] = None) -> Dict[int, str]:
    """A VQAv2 results JSON `[{"question_id": int, "answer": str}, ...]` as question id -> answer. A record that is
    not an object, lacks a field, repeats a question id, has a non-string answer or (given `answers`) an unknown
    question id raises `DataError` naming the file and the record."""
    return read_id_text_results(path, 'question_id', 'answer', answers, 'not the id of a question of the annotations')
