"""Sparsity of the encoder: which of its weights pruning touches, how sparse they are, and removing pruned MLP
channels for real.

Pruning itself is `torch.nn.utils.prune` (driven during training by `vlm.callbacks.EncoderPruning`). A pruned
tensor `weight` is `weight_orig * weight_mask` while pruning is active and a plain tensor with zeros once it is
made permanent (`prune.remove`); every function here reads both forms.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
from torch import nn

__all__ = ['PRUNING_MODES', 'prunable_parameters', 'channel_coupled_parameters', 'effective_tensor', 'sparsity',
           'encoder_sparsity', 'slim_mlp_channels', 'semi_structured_mask']

PRUNING_MODES = ('unstructured', 'channels')
Parameters = List[Tuple[nn.Module, str]]


def _mlps(encoder: nn.Module) -> List[nn.Module]:
    """The MLP of every block; a plain fc1 -> act -> fc2 MLP is required (timm's `Mlp`, the vlm default)."""
    mlps = [block.mlp for block in encoder.blocks]
    for i, mlp in enumerate(mlps):
        if not (isinstance(getattr(mlp, 'fc1', None), nn.Linear) and isinstance(getattr(mlp, 'fc2', None), nn.Linear)):
            raise ValueError(f'blocks.{i}.mlp is a {type(mlp).__name__}, not an fc1 -> act -> fc2 MLP: channel '
                             'pruning needs the plain MLP (swiglu_mlp=False)')
    return mlps


def prunable_parameters(encoder: nn.Module, mode: str = 'unstructured') -> Parameters:
    """The (module, 'weight') pairs that `mode` prunes in a ViT encoder (anything with `blocks`).

    'unstructured': every `nn.Linear` weight in the blocks (attention qkv and proj, MLP fc1 and fc2); the patch
    embedding, norms, RoPE frequencies and a classifier head are left dense.
    'channels': each block's MLP fc1 weight, whose rows are the MLP's hidden channels.
    """
    if mode not in PRUNING_MODES:
        raise ValueError(f'mode must be one of {PRUNING_MODES}, got {mode!r}')
    if mode == 'channels':
        return [(mlp.fc1, 'weight') for mlp in _mlps(encoder)]
    return [(module, 'weight') for module in encoder.blocks.modules() if isinstance(module, nn.Linear)]


def channel_coupled_parameters(fc1: nn.Linear, fc2: nn.Linear) -> Parameters:
    """What goes with the rows of `fc1` when its hidden channels are pruned: fc1's bias and fc2's columns."""
    return ([(fc1, 'bias')] if fc1.bias is not None else []) + [(fc2, 'weight')]


def effective_tensor(module: nn.Module, name: str) -> torch.Tensor:
    """The tensor the module computes with: `name_orig * name_mask` under active pruning, else the parameter."""
    mask = getattr(module, f'{name}_mask', None)
    if mask is not None:
        return getattr(module, f'{name}_orig') * mask
    return getattr(module, name)


@torch.no_grad()
def sparsity(parameters: Sequence[Tuple[nn.Module, str]]) -> float:
    """Fraction of exact zeros over all entries of `parameters` ((module, name) pairs), pruned or permanent."""
    zeros = total = 0
    for module, name in parameters:
        tensor = effective_tensor(module, name)
        zeros += int((tensor == 0).sum())
        total += tensor.numel()
    return zeros / max(total, 1)


def encoder_sparsity(encoder: nn.Module, mode: str = 'unstructured') -> float:
    """Fraction of exact zeros over the weights `mode` prunes (for 'channels' with fc1's bias and fc2's columns,
    which are pruned with each channel)."""
    parameters = prunable_parameters(encoder, mode)
    if mode == 'channels':
        parameters = parameters + [pair for mlp in _mlps(encoder)
                                   for pair in channel_coupled_parameters(mlp.fc1, mlp.fc2)]
    return sparsity(parameters)


@torch.no_grad()
def slim_mlp_channels(encoder: nn.Module) -> int:
    """Remove, for real, every MLP hidden channel that contributes nothing: its fc2 column is zero, or its fc1
    row and bias are zero and the activation maps 0 to 0. fc1 and fc2 are replaced by smaller `nn.Linear`s, so
    the encoder computes the same outputs with fewer FLOPs (its state dict no longer fits the dense model).
    Needs plain weights (pruning made permanent). Returns the number of channels removed."""
    removed = 0
    for i, mlp in enumerate(_mlps(encoder)):
        fc1, fc2 = mlp.fc1, mlp.fc2
        if hasattr(fc1, 'weight_orig') or hasattr(fc2, 'weight_orig'):
            raise ValueError(f'blocks.{i}.mlp is still being pruned: make the pruning permanent first')
        if not isinstance(getattr(mlp, 'norm', nn.Identity()), nn.Identity):
            raise ValueError(f'blocks.{i}.mlp normalises its hidden channels: removing channels would change it')
        dead_in = (fc1.weight == 0).all(dim=1)
        if fc1.bias is not None:
            dead_in &= fc1.bias == 0
        zero = torch.zeros(1, dtype=fc1.weight.dtype, device=fc1.weight.device)
        if not bool((mlp.act(zero) == 0).all()):
            dead_in = torch.zeros_like(dead_in)
        keep = ~(dead_in | (fc2.weight == 0).all(dim=0))  # (hidden,)
        if bool(keep.all()):
            continue
        index = keep.nonzero().squeeze(1)
        slim_fc1 = nn.Linear(fc1.in_features, len(index), bias=fc1.bias is not None,
                             device=fc1.weight.device, dtype=fc1.weight.dtype)
        slim_fc1.weight.copy_(fc1.weight[index])
        if fc1.bias is not None:
            slim_fc1.bias.copy_(fc1.bias[index])
        slim_fc2 = nn.Linear(len(index), fc2.out_features, bias=fc2.bias is not None,
                             device=fc2.weight.device, dtype=fc2.weight.dtype)
        slim_fc2.weight.copy_(fc2.weight[:, index])
        if fc2.bias is not None:
            slim_fc2.bias.copy_(fc2.bias)
        mlp.fc1, mlp.fc2 = slim_fc1, slim_fc2
        removed += int((~keep).sum())
    return removed


@torch.no_grad()
def semi_structured_mask(weight: torch.Tensor) -> torch.Tensor:
    """(out, in) weight -> bool mask keeping the 2 largest-magnitude entries of every 4 consecutive inputs of a
    row: the 2:4 pattern that `torch.sparse.to_sparse_semi_structured` and NVIDIA's sparse tensor cores take."""
    rows, columns = weight.shape
    if columns % 4:
        raise ValueError(f'2:4 sparsity needs the input size to be a multiple of 4, got {columns}')
    groups = weight.detach().abs().reshape(rows, columns // 4, 4)
    keep = groups.topk(2, dim=-1).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, keep, True)
    return mask.reshape(rows, columns)
