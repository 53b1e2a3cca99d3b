"""Checkpoints written before the model layer (vlm 0.1, before `vlm/models/`) load into today's tasks: their
hyperparameters and state-dict keys are renamed here, once, in one place."""
from __future__ import annotations

from dataclasses import fields
from typing import Any, Dict, Mapping

from .optimization import Optimization

CHECKPOINT_FORMAT_KEY = 'vlm_checkpoint_format'
CHECKPOINT_FORMAT = 2  # 1 (absent): vlm 0.1; 2: encoder_weights, optimization settings, tasks holding `model`
RENAMED_HPARAMS = {'pretrained_weights': 'encoder_weights', 'encoder_checkpoint': 'encoder_weights'}
OPTIMIZATION_FIELDS = tuple(field.name for field in fields(Optimization))


def migrate_hparams(hparams: Mapping[str, Any]) -> Dict[str, Any]:
    """Today's task arguments from a checkpoint's stored ones: `pretrained_weights` / `encoder_checkpoint` ->
    `encoder_weights`, `pretrained_skip_head` -> `load_head` (its negation), and the flat optimizer and schedule
    arguments (lr, weight_decay, ..., schedule, poly_power) -> one `optimization` mapping."""
    migrated = {RENAMED_HPARAMS.get(key, key): value for key, value in hparams.items()
                if key not in ('_instantiator', '_class_path')}
    if 'pretrained_skip_head' in migrated:
        migrated['load_head'] = not migrated.pop('pretrained_skip_head')
    flat = {key: migrated.pop(key) for key in OPTIMIZATION_FIELDS if key in migrated}
    if flat:
        optimization = migrated.get('optimization') or {}
        migrated['optimization'] = {**flat, **(optimization if isinstance(optimization, Mapping)
                                                else optimization.as_dict())}
    return migrated


def migrate_state_dict(state_dict: Dict[str, Any], prefixes: Mapping[str, str]) -> Dict[str, Any]:
    """Rename every key that starts with an old prefix (e.g. 'backbone.' -> 'model.backbone.')."""
    renamed = {}
    for key, value in state_dict.items():
        for old, new in prefixes.items():
            if key.startswith(old):
                key = new + key[len(old):]
                break
        renamed[key] = value
    return renamed
