"""Load encoder weights from local files: .safetensors, or .pth/.pt/.ckpt read with `weights_only=True`.

Nothing is downloaded. A vlm Lightning checkpoint works too: the encoder's entries are found under their
prefix (``encoder.``, ``model.encoder.``, ...). Missing and unexpected keys are reported; a tensor whose
shape differs from the model's is refused with its name and both shapes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Union

import torch
from torch import nn

from vlm.errors import CheckpointShapeError, DataError, MissingFileError
from vlm.io.checkpoints import read_checkpoint, read_safetensors

from .checkpoint_filter import strip_to_model_keys

log = logging.getLogger(__name__)

_STATE_DICT_KEYS = ('state_dict', 'model', 'module')


@dataclass
class LoadReport:
    """What `load_encoder_weights` did: keys loaded, and keys the model or the file lacked."""

    path: str
    loaded: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.path}: loaded {len(self.loaded)} tensors"]
        if self.missing:
            lines.append(f"  missing in checkpoint ({len(self.missing)}): {', '.join(self.missing)}")
        if self.unexpected:
            lines.append(f"  not used by the model ({len(self.unexpected)}): {', '.join(self.unexpected)}")
        return '\n'.join(lines)


def shape_mismatches(state_dict: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor]) -> List[str]:
    """'name: checkpoint (a, b) vs model (c, d)' for every tensor present in both with different shapes."""
    return [
        f"{name}: checkpoint {tuple(tensor.shape)} vs model {tuple(own[name].shape)}"
        for name, tensor in state_dict.items()
        if name in own and tuple(tensor.shape) != tuple(own[name].shape)
    ]


def read_state_dict(path: Union[str, Path]) -> Dict[str, torch.Tensor]:
    """The tensors of a .safetensors file, or of a torch checkpoint loaded with `weights_only=True`."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, 'checkpoint not found')
    if path.suffix == '.safetensors':
        return read_safetensors(path)
    checkpoint = read_checkpoint(path)
    for key in _STATE_DICT_KEYS:
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    if not isinstance(checkpoint, dict):
        raise DataError(path, f"expected a state dict (a mapping of names to tensors), got {type(checkpoint).__name__}")
    return {k: v for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}


def load_encoder_weights(model: nn.Module, path: Union[str, Path], strict: bool = True,
                         exclude_prefixes: Sequence[str] = ()) -> LoadReport:
    """Load `path` into `model` (an encoder): prefix found automatically, shapes checked first.

    strict=True raises on missing or unexpected keys; strict=False loads what matches and logs the rest.
    exclude_prefixes: model keys not to load (e.g. ('head.',) to fine-tune to new classes); reported missing.
    A shape mismatch always raises `CheckpointShapeError`, naming the tensor and both shapes.
    """
    state_dict = strip_to_model_keys(read_state_dict(path), model)
    state_dict = {k: v for k, v in state_dict.items() if not k.startswith(tuple(exclude_prefixes))}
    model_state = model.state_dict()
    mismatched = shape_mismatches(state_dict, model_state)
    if mismatched:
        raise CheckpointShapeError(f"{path}: tensor shapes differ from the model's:\n  " + '\n  '.join(mismatched))
    report = LoadReport(
        path=str(path),
        loaded=[name for name in state_dict if name in model_state],
        missing=[name for name in model_state if name not in state_dict],
        unexpected=[name for name in state_dict if name not in model_state],
    )
    if strict and (report.missing or report.unexpected):
        raise KeyError(f"checkpoint does not match the model (strict=True):\n{report}")
    model.load_state_dict(state_dict, strict=False)
    if report.missing or report.unexpected:
        log.warning("%s", report)
    else:
        log.info("%s", report)
    return report
