"""Timing shared by the speed benchmarks (`run_all`'s pruned-inference row) and the pruning experiment
(`benchmarks.experiments.pruning_table`); a module, not a script."""
from __future__ import annotations

import statistics
import time
from typing import Dict, List, Mapping

import torch
from torch import nn


@torch.inference_mode()
def inference_times(models: Mapping[str, nn.Module], images: torch.Tensor, rounds: int = 5,
                    repeats: int = 3) -> Dict[str, float]:
    """Median seconds per forward pass of each model on `images`, models alternating round by round (the order
    rotated every round, so that no model is always the one after a given other)."""
    for model in models.values():
        model.eval()(images)  # warm-up
    names = list(models)
    times: Dict[str, List[float]] = {name: [] for name in models}
    for round_index in range(rounds):
        for name in names[round_index % len(names):] + names[:round_index % len(names)]:
            model = models[name]
            start = time.perf_counter()
            for _ in range(repeats):
                model(images)
            times[name].append((time.perf_counter() - start) / repeats)
    return {name: statistics.median(values) for name, values in times.items()}
