"""What a task needs from its datamodule, and what a callback needs from a task: declared `Protocol`s, checked
with `isinstance` where a task or callback meets an object it did not build. Any class with these members fits
(`vlm.data.CocoDataModule`, `vlm.data.VisionLanguageDataModule`, the tasks), no inheritance needed."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, List, Protocol, runtime_checkable


@runtime_checkable
class CocoGroundTruth(Protocol):
    """A datamodule that ObjectDetector scores against (`vlm.data.CocoDataModule`): its `categories` map
    contiguous labels to COCO category ids (`.category_id(label)`), `annotation_file(split)` is the ground truth."""

    @property
    def categories(self) -> Any: ...

    def annotation_file(self, split: str) -> Path: ...


@runtime_checkable
class TextCorpus(Protocol):
    """A datamodule whose training texts a fresh tokenizer is trained on (`VisionLanguageDataModule`)."""

    def training_texts(self) -> Iterator[str]: ...


@runtime_checkable
class TakesCollators(Protocol):
    """A datamodule whose loaders collate with the task's functions (the task owns the tokenizer and the prompt
    format; the loader workers run them)."""

    def set_collate_fns(self, train: Callable, evaluate: Callable) -> None: ...


@runtime_checkable
class WritesPredictions(Protocol):
    """A task whose `predict` outputs `vlm.callbacks.PredictionWriter` writes: the items of every batch, in order,
    and the folder to write them in."""

    def write_predictions(self, items: List[Any], out: Path) -> None: ...
