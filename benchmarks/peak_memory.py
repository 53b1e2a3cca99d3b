"""A Lightning callback that logs the process's peak memory (`peak_memory_gib`) after every training batch:
CUDA's `max_memory_allocated` on a GPU, the resident set's high-water mark on a CPU. Used by gpu_suite.py as
`--trainer.callbacks+ benchmarks.peak_memory.PeakMemory`."""
from __future__ import annotations

import resource
import sys

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

GIB = 1024 ** 3


def peak_memory_gib() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / GIB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (GIB if sys.platform == 'darwin' else 1024 ** 2)


class PeakMemory(Callback):
    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args) -> None:
        pl_module.log('peak_memory_gib', peak_memory_gib(), on_step=True, on_epoch=False)
