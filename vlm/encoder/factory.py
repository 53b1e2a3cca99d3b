"""The one place where vlm builds an image encoder: a timm model by name (a vlm RoPE/RMSNorm ViT, any timm model,
or a `local-dir:` folder), with initial weights from a local file, and its normalisation from timm's config."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import timm
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, resolve_data_config
from timm.models import get_pretrained_cfg, parse_model_name
# timm's own reader of a local-dir: folder's config.json (the one `timm.create_model('local-dir:...')` uses, with
# its legacy-format and model_args repairs); timm exports no public name for it, so timm is pinned (pyproject)
from timm.models._hub import load_model_config_from_path
from torch import nn

from vlm.errors import DataError, InputError
from vlm.io.json_files import read_json

from .weights import LoadReport, load_encoder_weights

log = logging.getLogger(__name__)
Normalization = Tuple[Tuple[float, ...], Tuple[float, ...]]  # (mean, std) per RGB channel


def create_encoder(
        name: str,
        kwargs: Optional[Mapping[str, Any]] = None,
        weights: Optional[str] = None,
        num_classes: int = 0,
        load_head: bool = False,
) -> nn.Module:
    """`timm.create_model(name, num_classes=num_classes, **kwargs)`, nothing downloaded.

    name: a timm model name (`vlm_vit_small_patch16_rope_rms`, `vit_small_patch14_dinov2`, ...) or a local timm
        model folder `local-dir:weights/dinov2-small` (its config.json and weights, as `vlm weights` / `vlm convert`
        write them; its weights are loaded).
    weights: initial weights from a local .safetensors / .pth file or any vlm Lightning checkpoint (the encoder's
        entries are found under their prefix); missing and unexpected keys are logged, a tensor of another shape
        is refused (`CheckpointShapeError`). The file's classifier head is skipped unless `load_head`.
    An unknown name or a keyword the model does not take raises one `InputError` naming it.
    """
    kwargs = dict(kwargs or {})
    source, identifier = _parse(name)
    if source == 'local-dir':
        _local_dir_config(Path(identifier), name)  # a folder timm cannot read is named here, in one line
    try:
        encoder = timm.create_model(name, pretrained=source == 'local-dir', num_classes=num_classes, **kwargs)
    except RuntimeError as error:
        if 'Unknown model' in str(error):
            raise InputError(f"unknown encoder {name!r}: not a timm model name (after `import vlm`: "
                             f"vlm_vit_{{tiny,small,base,large}}_patch16_rope_rms, or any name of "
                             f"`timm.list_models()`), nor `local-dir:FOLDER`") from None
        raise
    except TypeError as error:
        raise InputError(f'encoder {name!r} with encoder_kwargs {kwargs}: {error}') from None
    if weights:
        head = encoder.pretrained_cfg.get('classifier', 'head') if hasattr(encoder, 'pretrained_cfg') else 'head'
        exclude: Sequence[str] = () if load_head else (f'{head}.',)
        load_encoder_weights(encoder, weights, strict=False, exclude_prefixes=exclude)
    return encoder


def resolve_local_dir(name: str, kwargs: Optional[Mapping[str, Any]] = None
                      ) -> Tuple[str, Dict[str, Any], Optional[str]]:
    """(architecture, model kwargs, weights file) of a `local-dir:FOLDER` encoder (its config.json's `architecture`
    and `model_args` under `kwargs`, and its model.safetensors); any other name is returned as it is, without a
    file. A model that stores its encoder this way is self-contained: it no longer needs FOLDER once built."""
    source, identifier = _parse(name)
    if source != 'local-dir':
        return name, dict(kwargs or {}), None
    folder = Path(identifier)
    _, architecture, model_args = _local_dir_config(folder, name)
    model_args = {k: v for k, v in (model_args or {}).items() if k != 'num_classes'}
    weights = next((str(folder / f) for f in ('model.safetensors', 'pytorch_model.bin') if (folder / f).is_file()),
                   None)
    if weights is None:
        raise InputError(f'encoder {name!r}: no model.safetensors in {folder}')
    return architecture, {**model_args, **dict(kwargs or {})}, weights


def _local_dir_config(folder: Path, name: str) -> Tuple[Dict[str, Any], str, Dict[str, Any]]:
    """(pretrained config, architecture, model args) of a timm model folder, its config.json checked first."""
    path = folder / 'config.json'
    if not path.is_file():
        raise InputError(f'encoder {name!r}: {path} not found (write the folder with `vlm weights` or `vlm convert`)')
    config = read_json(path, 'model config')
    if not isinstance(config, dict) or not isinstance(config.get('architecture'), str):
        raise DataError(path, 'not a timm model config (a JSON object naming its architecture)', field='architecture')
    if not isinstance(config.get('model_args', {}), dict):
        raise DataError(path, 'model_args must be a JSON object', field='model_args')
    return load_model_config_from_path(str(folder))


def _parse(name: str) -> Tuple[Optional[str], str]:
    try:
        return parse_model_name(name)
    except ValueError as error:
        raise InputError(f'encoder {name!r}: {error}') from None


def encoder_normalization(name: Optional[str]) -> Normalization:
    """(mean, std) that `name`'s images are normalised with, from its timm pretrained config
    (`timm.data.resolve_data_config`), or a `local-dir:` folder's config.json; ImageNet's for an unknown name."""
    if not name:
        return tuple(IMAGENET_DEFAULT_MEAN), tuple(IMAGENET_DEFAULT_STD)
    source, identifier = _parse(name)
    if source == 'local-dir':
        pretrained_cfg: Dict[str, Any] = _local_dir_config(Path(identifier), name)[0]
    else:
        cfg = get_pretrained_cfg(name)
        pretrained_cfg = cfg.to_dict() if cfg is not None else {}
    config = resolve_data_config(pretrained_cfg=pretrained_cfg or {'mean': IMAGENET_DEFAULT_MEAN,
                                                                   'std': IMAGENET_DEFAULT_STD})
    return tuple(float(v) for v in config['mean']), tuple(float(v) for v in config['std'])


__all__ = ['LoadReport', 'Normalization', 'create_encoder', 'encoder_normalization', 'resolve_local_dir']
