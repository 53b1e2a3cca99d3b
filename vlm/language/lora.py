"""LoRA adapters on the vision-language model's decoder (and optionally its encoder), through peft; merged into the
weights at export, so an exported folder loads without peft.

    lora: {parts: [decoder], r: 16, alpha: 32, dropout: 0.05, target_modules: [q_proj, k_proj, v_proj, o_proj]}

A part with LoRA keeps its pretrained weights frozen and learns only the adapters (low-rank updates B A of the
target Linear layers, scaled by alpha / r, B initialised at zero: the adapted model starts as the original).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from torch import nn

from vlm.errors import InputError

LORA_PARTS = ('encoder', 'decoder')
# every Linear of a Llama decoder layer; of a vlm / timm ViT block
DEFAULT_TARGETS = {'decoder': ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
                   'encoder': ['qkv', 'proj', 'fc1', 'fc2']}


@dataclass(frozen=True)
class LoraSettings:
    """parts: which of 'decoder' / 'encoder' get adapters. r: rank; alpha: scale (updates are scaled by alpha / r);
    dropout: on the adapters' input. target_modules: the Linear layer names to adapt (default: every Linear of a
    decoder layer, of an encoder block)."""

    parts: Tuple[str, ...] = ('decoder',)
    r: int = 16
    alpha: float = 32.0
    dropout: float = 0.05
    target_modules: Optional[List[str]] = None

    def __post_init__(self) -> None:
        unknown = set(self.parts) - set(LORA_PARTS)
        if unknown or not self.parts:
            raise InputError(f'lora parts must be a non-empty subset of {LORA_PARTS}, got {list(self.parts)}')
        if self.r < 1:
            raise InputError(f'lora rank r must be at least 1, got {self.r}')

    @classmethod
    def of(cls, value: Union['LoraSettings', Mapping[str, Any], None]) -> Optional['LoraSettings']:
        if value is None or isinstance(value, LoraSettings):
            return value
        value = dict(value)
        if 'parts' in value:
            value['parts'] = tuple(value['parts'])
        return cls(**value)

    def as_dict(self) -> Dict[str, Any]:
        return {**asdict(self), 'parts': list(self.parts)}

    def config(self, part: str):
        from peft import LoraConfig

        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, bias='none',
                          target_modules=self.target_modules or DEFAULT_TARGETS[part])


def add_lora(module: nn.Module, settings: LoraSettings, part: str) -> nn.Module:
    """`module` (the decoder or the encoder) wrapped by peft with LoRA adapters; its own weights frozen."""
    from peft import get_peft_model

    return get_peft_model(module, settings.config(part))


def merged(module: nn.Module) -> nn.Module:
    """The module with its LoRA adapters folded into the weights (peft's `merge_and_unload`); a module without
    adapters as it is."""
    return module.merge_and_unload() if hasattr(module, 'merge_and_unload') else module


def count_parameters(modules: Sequence[nn.Module]) -> Tuple[int, int]:
    """(trainable, total) parameters of `modules` (shared tensors counted once)."""
    seen: Dict[int, nn.Parameter] = {}
    for module in modules:
        for parameter in module.parameters():
            seen.setdefault(id(parameter), parameter)
    return sum(p.numel() for p in seen.values() if p.requires_grad), sum(p.numel() for p in seen.values())


__all__ = ['DEFAULT_TARGETS', 'LORA_PARTS', 'LoraSettings', 'add_lora', 'count_parameters', 'merged']
