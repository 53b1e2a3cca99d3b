"""Find an encoder's weights inside any state dict: a bare timm model, or a vlm Lightning checkpoint
where they sit under a prefix such as ``encoder.`` or ``model.encoder.``."""
from __future__ import annotations

from collections import Counter
from typing import Dict, Mapping

import torch
from torch import nn


def strip_to_model_keys(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Keep the entries under the prefix whose stripped keys best match `model`'s state dict, prefix removed.

    With no prefix that matches any key, the state dict is returned unchanged, so that loading reports
    every key as missing or unexpected rather than silently loading nothing.
    """
    model_keys = set(model.state_dict())
    prefixes: Counter = Counter()
    for key in state_dict:
        for model_key in model_keys:
            if key.endswith(model_key) and (len(key) == len(model_key) or key[-len(model_key) - 1] == '.'):
                prefixes[key[: len(key) - len(model_key)]] += 1
    if not prefixes:
        return dict(state_dict)
    prefix, _ = max(prefixes.items(), key=lambda item: (item[1], -len(item[0])))
    return {key[len(prefix):]: value for key, value in state_dict.items() if key.startswith(prefix)}


def checkpoint_filter_fn(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """timm `pretrained_filter_fn`: used by `timm.create_model(..., pretrained=True, pretrained_cfg_overlay=...)`."""
    return strip_to_model_keys(state_dict, model)
