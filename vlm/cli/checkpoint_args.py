"""What `--ckpt_path` means to `vlm fit | validate | test | predict`.

- `--ckpt_path last` resumes the newest `last.ckpt` of the run's logger name (`runs/NAME/version_*/checkpoints`),
  not only one in the new run's own folder, which never holds one.
- A checkpoint's stored hyperparameters fill the model's arguments, but what the command line or a config sets
  explicitly wins (inference mode, window, thresholds, generation options...); each such override is printed.
  An override that changes the weights' shapes is then refused by the checkpoint's shape check.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import yaml

from vlm.errors import DataError


def _loggers(trainer_config: Any) -> List[Any]:
    loggers = getattr(trainer_config, 'logger', None)
    if loggers in (None, True, False):
        return []
    return list(loggers) if isinstance(loggers, (list, tuple)) else [loggers]


def run_folders(trainer_config: Any) -> List[Path]:
    """`save_dir/name` of each configured logger (where its `version_*` folders are)."""
    folders = []
    for logger in _loggers(trainer_config):
        init_args = getattr(logger, 'init_args', None)
        save_dir = getattr(init_args, 'save_dir', None) if init_args is not None else None
        if save_dir is not None:
            folders.append(Path(save_dir) / str(getattr(init_args, 'name', None) or 'lightning_logs'))
    return folders


def newest_last_checkpoint(folders: Iterable[Path]) -> Optional[Path]:
    """The most recently written `version_*/checkpoints/last.ckpt` under the folders."""
    found = [path for folder in folders for path in folder.glob('version_*/checkpoints/last.ckpt')]
    return max(found, key=lambda path: path.stat().st_mtime) if found else None


def explicit_model_keys(args: List[str]) -> Dict[str, Any]:
    """The model arguments a command sets explicitly, by name (a nested mapping for `a.b` keys): those of its
    config files (`--config FILE`) and of `--model.init_args.KEY VALUE` / `--model.KEY=VALUE` options."""
    explicit: Dict[str, Any] = {}
    for index, arg in enumerate(args):
        if arg in ('--config', '-c') and index + 1 < len(args):
            _merge_keys(explicit, _config_model_keys(Path(args[index + 1])))
        elif arg.startswith('--config='):
            _merge_keys(explicit, _config_model_keys(Path(arg.split('=', 1)[1])))
        match = re.match(r'--model\.(?:init_args\.)?([\w.]+)', arg)
        if match and match.group(1) not in ('class_path', 'help'):
            node = explicit
            *parents, leaf = match.group(1).split('.')
            for parent in parents:
                node = node.setdefault(parent, {}) if isinstance(node.get(parent, {}), dict) else {}
            node[leaf] = True
    return explicit


def _config_model_keys(path: Path) -> Dict[str, Any]:
    if not path.is_file():
        return {}
    config = yaml.safe_load(path.read_text()) or {}
    model = config.get('model') or {}
    keys = model.get('init_args', {}) if isinstance(model, dict) else {}
    return {key: _mark(value) for key, value in (keys or {}).items()}


def _mark(value: Any) -> Any:
    return {key: _mark(item) for key, item in value.items()} if isinstance(value, dict) else True


def _merge_keys(into: Dict[str, Any], other: Mapping[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge_keys(into[key], value)
        else:
            into[key] = value


def merge_stored(stored: Mapping[str, Any], current: Mapping[str, Any],
                 explicit: Mapping[str, Any]) -> Tuple[Dict[str, Any], List[str]]:
    """The checkpoint's arguments with the explicitly given ones on top; the list of 'key: stored -> given'."""
    merged, overridden = dict(stored), []
    for key, marks in explicit.items():
        if key not in current:
            continue
        given, before = current[key], stored.get(key)
        if isinstance(marks, dict) and isinstance(before, Mapping) and isinstance(given, Mapping):
            inner, changes = merge_stored(before, given, marks)
            merged[key] = inner
            overridden += [f'{key}.{change}' for change in changes]
        elif key not in stored or before != given:
            merged[key] = given
            if key in stored:
                overridden.append(f'{key}: {before!r} -> {given!r}')
    return merged, overridden


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


UNTRAINED = 'untrained'  # `--ckpt_path untrained`: validate / test / predict the model as its config builds it


def is_sharded_checkpoint(folder: Path) -> bool:
    """A folder Lightning restores as one checkpoint: torch.distributed.checkpoint's (FSDP2: `.metadata`) or
    DeepSpeed's (`checkpoint/` with `*_model_states.pt`, or those files directly)."""
    return ((folder / '.metadata').is_file() or (folder / 'checkpoint').is_dir()
            or any(folder.glob('*model_states.pt')))


def missing_checkpoint(path: str) -> DataError:
    return DataError(path, 'checkpoint not found (give a file, or `last` for the newest last.ckpt of the run)')


def as_dict(namespace: Any) -> Dict[str, Any]:
    """A jsonargparse Namespace (or dict) as a plain nested dict."""
    if hasattr(namespace, 'as_dict'):
        return namespace.as_dict()
    return dict(namespace or {})


__all__ = ['UNTRAINED', 'is_sharded_checkpoint', 'as_dict', 'explicit_model_keys', 'merge_stored', 'missing_checkpoint', 'newest_last_checkpoint',
           'run_folders', 'say']
