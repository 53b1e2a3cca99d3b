"""Reading checkpoints: torch files with `weights_only=True` only (a checkpoint from elsewhere can hold code that
unpickling would run; it is refused, naming the file), sharded checkpoint directories as they are."""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Union

import torch

from vlm.errors import DataError, MissingFileError


def read_checkpoint(path: Union[str, Path], map_location: Any = 'cpu') -> Any:
    """`torch.load(path, weights_only=True)`; a missing file, a file that is not a torch checkpoint (truncated,
    garbled) and one holding other Python objects than tensors and containers raise `DataError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, 'checkpoint not found')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(path, f'refused: it holds Python objects that loading would have to execute (read with '
                              f'weights_only=True: {first[:160]}); only load checkpoints you trust, and convert '
                              f'them to plain tensors or safetensors') from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise DataError(path, f'not a readable torch checkpoint (truncated or corrupt?): {str(error)[:200]}') from None


def read_safetensors(path: Union[str, Path]) -> Any:
    """The tensors of a .safetensors file; a truncated or garbled one raises `DataError` naming it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device='cpu')
    except (SafetensorError, OSError, ValueError) as error:
        raise DataError(path, f'not a readable safetensors file (truncated or corrupt?): {str(error)[:200]}') from None
