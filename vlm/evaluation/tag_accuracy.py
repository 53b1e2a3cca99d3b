"""How well a cell tagger tags: per vocabulary, the accuracy of its words on the cells that belong to an object;
how well it finds the objects' centre cells (F1); how often it counts an image's objects exactly."""
from __future__ import annotations

from typing import Dict, Sequence

import torch
from torchmetrics import Metric

IGNORE_TAG = -100  # as vlm.language.tags.IGNORE_TAG (evaluation sits above language but needs no more of it)


class TagAccuracy(Metric):
    """Accumulates tag predictions against targets.

    update(centre_probability (B, g_h, g_w), word_logits [(B, V_i, g_h, g_w)], centres (B, g_h, g_w),
    labels (B, V, g_h, g_w) with IGNORE_TAG where a cell belongs to no object). compute() -> {'<field>': accuracy
    on object cells per vocabulary, 'objects': the lowest of those (the gate), 'centre_f1': F1 of the cells
    predicted centred (probability > 0.5), 'count': fraction of images whose predicted centre count is exact}."""

    full_state_update = False

    def __init__(self, fields: Sequence[str]) -> None:
        super().__init__()
        self.fields = list(fields)
        count = len(self.fields)
        self.add_state('correct', torch.zeros(count, dtype=torch.long), dist_reduce_fx='sum')
        self.add_state('cells', torch.zeros(count, dtype=torch.long), dist_reduce_fx='sum')
        self.add_state('true_positive', torch.zeros((), dtype=torch.long), dist_reduce_fx='sum')
        self.add_state('predicted', torch.zeros((), dtype=torch.long), dist_reduce_fx='sum')
        self.add_state('actual', torch.zeros((), dtype=torch.long), dist_reduce_fx='sum')
        self.add_state('exact_counts', torch.zeros((), dtype=torch.long), dist_reduce_fx='sum')
        self.add_state('images', torch.zeros((), dtype=torch.long), dist_reduce_fx='sum')

    def update(self, centre_probability: torch.Tensor, word_logits: Sequence[torch.Tensor], centres: torch.Tensor,
               labels: torch.Tensor) -> None:
        for index, logits in enumerate(word_logits):
            target = labels[:, index]
            known = target != IGNORE_TAG
            self.correct[index] += int((logits.argmax(1)[known] == target[known]).sum())
            self.cells[index] += int(known.sum())
        predicted = centre_probability > 0.5
        actual = centres > 0.5
        self.true_positive += int((predicted & actual).sum())
        self.predicted += int(predicted.sum())
        self.actual += int(actual.sum())
        self.exact_counts += int((predicted.flatten(1).sum(1) == actual.flatten(1).sum(1)).sum())
        self.images += len(centres)

    def compute(self) -> Dict[str, torch.Tensor]:
        accuracy = self.correct.float() / self.cells.clamp(min=1).float()
        scores = {field: accuracy[index] for index, field in enumerate(self.fields)}
        scores['objects'] = accuracy.min()
        scores['centre_f1'] = 2 * self.true_positive.float() / (self.predicted + self.actual).clamp(min=1).float()
        scores['count'] = self.exact_counts.float() / self.images.clamp(min=1).float()
        return scores
