"""A torchmetrics `Metric` whose state is a list of Python records (predictions with their ids and strings),
gathered across processes with `all_gather_object`, as torchmetrics' own `MeanAveragePrecision` gathers its
masks. Records of one id seen twice (a distributed sampler pads the last batch with repeats) count once."""
from __future__ import annotations

from typing import Any, Callable, Dict, Hashable, List, Optional

import torch.distributed as dist
from torchmetrics import Metric


class GatheredRecordsMetric(Metric):
    """Base class: `self.records` is a list state; subclasses append (id, ...) tuples in `update` and score
    `self.unique_records()` in `compute`."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state('records', default=[], dist_reduce_fx=None)

    def _sync_dist(self, dist_sync_fn: Optional[Callable] = None, process_group: Optional[Any] = None) -> None:
        group = process_group or self.process_group
        gathered: List[Any] = [None] * dist.get_world_size(group=group)
        dist.all_gather_object(gathered, self.records, group=group)
        self.records = [record for part in gathered for record in part]

    def unique_records(self) -> Dict[Hashable, Any]:
        """The records by their first element (the id), the first one of each id kept, in arrival order."""
        unique: Dict[Hashable, Any] = {}
        for record in self.records:
            unique.setdefault(record[0], record)
        return unique
