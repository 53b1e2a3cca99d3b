"""`PeakMemory`: log the process's peak memory (`peak_memory_gib`) after every training batch: CUDA's
`max_memory_allocated` on a GPU, the resident set's high-water mark on a CPU. A config or a command line names it
(`--trainer.callbacks+ vlm.callbacks.PeakMemory`), as the GPU suite (`python -m benchmarks.speed.gpu_suite`) does."""
from __future__ import annotations

import resource
import sys
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

GIB = 1024 ** 3


def peak_memory_gib() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / GIB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (GIB if sys.platform == 'darwin' else 1024 ** 2)


class PeakMemory(Callback):
    """Logs `peak_memory_gib` (`peak_memory_gib()`) with every training log row."""

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        pl_module.log('peak_memory_gib', peak_memory_gib(), on_step=True, on_epoch=False)
