"""Tag settings and per-cell tag targets: what a cell of the image-token grid should say in words.

A tag vocabulary is an annotation field with the words it may take: `category` (the object's category name) and
any attribute a dataset annotates per instance (the shapes data's `color`). Each cell of the token grid gets:

- centre: 1 where an object's visible centroid lies (one cell per object, so counting cells counts objects);
- labels (one per vocabulary): the words of the object the cell belongs to: the object whose centroid it holds,
  else the object covering most of it (when it covers at least `min_cover` of the cell), else none (ignored).

The tagger learns both densely; its image tokens are centre probability x the expected word embeddings.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from vlm.errors import InputError

IGNORE_TAG = -100
TAG_SOURCES = ('tagger', 'annotations')
COVER_SAMPLES = 8  # owner-map samples per cell side when measuring coverage


@dataclass(frozen=True)
class TagSettings:
    """The `tags` section of a vision-language model.

    vocabularies: annotation field -> its words, in order, e.g. {category: [circle, ...], color: [red, ...]}.
    source: 'tagger' (predicted from the image) or 'annotations' (the ground-truth targets given with the batch,
        one-hot: the oracle that bounds what perfect tags give).
    indices: encoder blocks whose grids the tagger reads (negative: from the end); the final grid is always used.
    mean_rgb: also read each cell's mean colour on a `mean_rgb` x `mean_rgb` sub-grid (0: not), which keeps the
        colour that deep blocks lose.
    hidden_size: width of the tagger's convolutions.
    min_cover: the fraction of a cell an object must cover for the cell to be labelled with its words.
    loss_weight: weight of the tag loss beside the language-model loss when both are computed.
    """

    vocabularies: Dict[str, List[str]] = field(default_factory=dict)
    source: str = 'tagger'
    indices: Tuple[int, ...] = (-1,)
    mean_rgb: int = 4
    hidden_size: int = 256
    min_cover: float = 0.125
    loss_weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.vocabularies:
            raise InputError('tags.vocabularies must name at least one annotation field and its words')
        for name, words in self.vocabularies.items():
            if not words or len(set(words)) != len(words) or not all(isinstance(w, str) and w.strip() for w in words):
                raise InputError(f'tags.vocabularies.{name} must be a list of distinct non-empty words, got {words!r}')
        if self.source not in TAG_SOURCES:
            raise InputError(f'tags.source must be one of {TAG_SOURCES}, got {self.source!r}')
        if not 0.0 < self.min_cover <= 1.0:
            raise InputError(f'tags.min_cover must be in (0, 1], got {self.min_cover}')
        if self.mean_rgb < 0 or self.hidden_size < 1:
            raise InputError('tags.mean_rgb must be >= 0 and tags.hidden_size >= 1')

    @classmethod
    def of(cls, value: Union['TagSettings', Mapping[str, Any], None]) -> Optional['TagSettings']:
        if value is None or isinstance(value, TagSettings):
            return value
        value = dict(value)
        if 'vocabularies' in value:
            value['vocabularies'] = {str(k): list(v) for k, v in dict(value['vocabularies']).items()}
        if 'indices' in value:
            value['indices'] = tuple(int(i) for i in value['indices'])
        return cls(**value)

    def as_dict(self) -> Dict[str, Any]:
        return {**asdict(self), 'indices': list(self.indices)}

    @property
    def fields(self) -> List[str]:
        return list(self.vocabularies)

    def label_of(self, field_name: str, word: str) -> Optional[int]:
        """The index of `word` in the vocabulary of `field_name`, None when it is not one of its words."""
        words = self.vocabularies[field_name]
        return words.index(word) if word in words else None


def cell_targets(owner: torch.Tensor, centroids: torch.Tensor, labels: torch.Tensor, grid: Tuple[int, int],
                 min_cover: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """One image's tag targets on a (gh, gw) cell grid.

    owner (H, W) int: the index of the object seen at each pixel, -1 for background (any resolution: cells are
    fractions of the image). centroids (M, 2): each object's visible centroid (x, y) as fractions of the width and
    height. labels (M, V): each object's word index per vocabulary (IGNORE_TAG: not known).
    Returns centre (gh, gw) float (1 at each object's centroid cell; a later object wins a shared cell) and labels
    (V, gh, gw) long (IGNORE_TAG where the cell belongs to no object).
    """
    gh, gw = grid
    count, vocabularies = labels.shape
    centre = torch.zeros(gh, gw)
    cell_labels = torch.full((vocabularies, gh, gw), IGNORE_TAG, dtype=torch.long)
    if count == 0:
        return centre, cell_labels
    samples = F.interpolate(owner[None, None].float(), size=(gh * COVER_SAMPLES, gw * COVER_SAMPLES),
                            mode='nearest')[0, 0].long()  # (gh k, gw k)
    one_hot = F.one_hot(samples + 1, count + 1)[..., 1:].permute(2, 0, 1).float()  # (M, gh k, gw k)
    cover = F.avg_pool2d(one_hot[None], COVER_SAMPLES)[0]  # (M, gh, gw): fraction of each cell
    best, covering = cover.max(0)  # (gh, gw)
    belongs = torch.where(best >= min_cover, covering, torch.full_like(covering, -1))  # (gh, gw)
    columns = (centroids[:, 0] * gw).long().clamp(0, gw - 1)
    rows = (centroids[:, 1] * gh).long().clamp(0, gh - 1)
    for index in range(count):  # in order: a later object (drawn on top) wins a shared centroid cell
        centre[rows[index], columns[index]] = 1.0
        belongs[rows[index], columns[index]] = index
    known = belongs >= 0
    cell_labels[:, known] = labels[belongs[known]].T  # (V, K)
    return centre, cell_labels


def batch_cell_targets(instances: Sequence[Mapping[str, torch.Tensor]], grid: Tuple[int, int],
                       min_cover: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """`cell_targets` of several images: centres (I, gh, gw), labels (I, V, gh, gw)."""
    pairs = [cell_targets(item['owner'], item['centroids'], item['labels'], grid, min_cover) for item in instances]
    return torch.stack([centre for centre, _ in pairs]), torch.stack([labels for _, labels in pairs])
