"""Training order and augmentation as pure functions of (seed, epoch, index), so that a run killed and resumed from
its last checkpoint sees the same batches, augmented the same way, as an uninterrupted one, whatever the number of
loader workers (persistent workers keep their own random state, which a resume cannot restore).

`EpochShuffle` is a sampler that yields (epoch, index) pairs in a permutation drawn from (seed, epoch); Lightning
calls its `set_epoch` at every epoch start. `MixtureShuffle` draws from several datasets by weights, the same way. `Reseeded` wraps a dataset: item (epoch, index) seeds torch's and
Python's generators from (seed, epoch, index) before the dataset draws its random augmentations.
"""
from __future__ import annotations

import random
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import torch
from torch.utils.data import Dataset, Sampler

Key = Tuple[int, int]  # (epoch, index)


def _mix(*values: int) -> int:
    """A 63-bit seed from integers (a fixed, portable mix)."""
    seed = 0x9E3779B97F4A7C15
    for value in values:
        seed = (seed ^ (value + 0x9E3779B97F4A7C15 + (seed << 6) + (seed >> 2))) & 0x7FFFFFFFFFFFFFFF
    return seed


class EpochShuffle(Sampler[Key]):
    """The indices 0..n-1 of a dataset, shuffled by (seed, epoch), as (epoch, index) pairs.

    current_epoch: where the epoch comes from when an iteration starts (the trainer's), else the last `set_epoch`:
    Lightning creates a resumed run's first iterator before it calls `set_epoch`."""

    def __init__(self, size: int, seed: int = 0, current_epoch: Optional[Callable[[], Optional[int]]] = None) -> None:
        self.size, self.seed, self.epoch, self.current_epoch = size, seed, 0, current_epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[Key]:
        epoch = self.current_epoch() if self.current_epoch is not None else None
        epoch = self.epoch if epoch is None else epoch
        generator = torch.Generator().manual_seed(_mix(self.seed, epoch))
        for index in torch.randperm(self.size, generator=generator).tolist():
            yield epoch, index

    def __len__(self) -> int:
        return self.size


class Reseeded(Dataset):
    """`dataset[index]` with its random augmentation drawn from (seed, epoch, index) (see the module docstring)."""

    def __init__(self, dataset: Dataset, seed: int = 0) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Key) -> Any:
        epoch, index = key
        seed = _mix(self.seed, epoch, index)
        torch.manual_seed(seed)
        random.seed(seed)
        return self.dataset[index]

    def __getattr__(self, name: str) -> Any:  # the wrapped dataset's own attributes (skipped counters, parts, ...)
        if name in ('dataset', 'seed'):
            raise AttributeError(name)
        return getattr(self.dataset, name)


class MixtureShuffle(EpochShuffle):
    """Samples of several datasets laid end to end (a ConcatDataset of `sizes`), drawn by `weights`: each of an
    epoch's `length` samples (default: all of them, sum(sizes)) comes from part k with probability
    weights[k] / sum(weights), and each part yields its samples in a fresh permutation, starting a new one when
    it runs out. Yields (epoch, index into the concatenation) pairs, from (seed, epoch) only, like `EpochShuffle`.
    """

    def __init__(self, sizes: Sequence[int], weights: Sequence[float], seed: int = 0, length: Optional[int] = None,
                 current_epoch: Optional[Callable[[], Optional[int]]] = None) -> None:
        if len(sizes) != len(weights) or not sizes:
            raise ValueError(f'{len(sizes)} datasets but {len(weights)} weights')
        if any(weight < 0 for weight in weights) or not any(w > 0 and n > 0 for w, n in zip(weights, sizes)):
            raise ValueError(f'mixture weights must be >= 0 with one > 0 on a non-empty dataset, got {list(weights)}')
        self.sizes = [int(size) for size in sizes]
        self.weights = [float(weight) if size else 0.0 for weight, size in zip(weights, sizes)]
        super().__init__(int(length) if length is not None else sum(self.sizes), seed, current_epoch)

    def __iter__(self) -> Iterator[Key]:
        epoch = self.current_epoch() if self.current_epoch is not None else None
        epoch = self.epoch if epoch is None else epoch
        generator = torch.Generator().manual_seed(_mix(self.seed, epoch))
        parts = torch.multinomial(torch.tensor(self.weights), self.size, replacement=True, generator=generator)
        offsets = [sum(self.sizes[:k]) for k in range(len(self.sizes))]
        orders: List[List[int]] = [[] for _ in self.sizes]
        for part in parts.tolist():
            if not orders[part]:  # a new pass over this part
                orders[part] = torch.randperm(self.sizes[part], generator=generator).tolist()[::-1]
            yield epoch, offsets[part] + orders[part].pop()
