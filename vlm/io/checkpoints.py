"""Reading checkpoints: torch files with `weights_only=True` only (a checkpoint from elsewhere can hold code that
unpickling would run; it is refused, naming the file), sharded checkpoint directories as they are."""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Optional, Union

import torch

from vlm.errors import DataError, MissingFileError


def read_checkpoint(path: Union[str, Path], map_location: Any = 'cpu') -> Any:
    """`torch.load(path, weights_only=True)`; a missing file, a file that is not a torch checkpoint (truncated,
    garbled) and one holding other Python objects than tensors and containers raise `DataError` naming it."""
    path = Path(path)
    if path.is_dir():
        raise DataError(path, 'is a folder, not a checkpoint file')
    if not path.is_file():
        raise MissingFileError(path, 'checkpoint not found')
    other = not_a_torch_file(path)
    if other:
        raise DataError(path, f'not a torch checkpoint: {other}')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(path, f'refused: it holds Python objects that loading would have to execute (read with '
                              f'weights_only=True: {first[:160]}); only load checkpoints you trust, and convert '
                              f'them to plain tensors or safetensors') from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise DataError(path, f'not a readable torch checkpoint (truncated or corrupt?): {str(error)[:200]}') from None


def not_a_torch_file(path: Path) -> Optional[str]:
    """What a file is when its first bytes show it is no torch checkpoint (torch.save writes a zip archive, or a
    pickle in the legacy format): an empty, text, JSON, safetensors or other file; None when it may be one."""
    with open(path, 'rb') as file:
        head = file.read(512)
    if not head:
        return 'the file is empty'
    if head.startswith(b'PK\x03\x04') or head[:1] == b'\x80':
        return None
    if len(head) > 8 and head[8:9] == b'{' and path.suffix == '.safetensors':
        return 'it is a safetensors file of weights (give it where weights are asked for, e.g. encoder_weights)'
    try:
        text = head.decode('utf-8').lstrip()
    except UnicodeDecodeError:
        return f'an unknown binary format (it starts with {head[:8]!r})'
    if text[:1] in ('{', '['):
        return 'it is a JSON file (a config or annotations?)'
    return f'it is a text file (it starts with {text[:40]!r})'


def read_safetensors(path: Union[str, Path]) -> Any:
    """The tensors of a .safetensors file; a truncated or garbled one raises `DataError` naming it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device='cpu')
    except (SafetensorError, OSError, ValueError) as error:
        raise DataError(path, f'not a readable safetensors file (truncated or corrupt?): {str(error)[:200]}') from None
