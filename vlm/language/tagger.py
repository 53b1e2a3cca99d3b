"""The cell tagger: per cell of the image-token grid, whether an object is centred there and which words describe
the object it belongs to; and the image tokens those tags make, sitting among the decoder's own word embeddings.

    encoder grids (B, C, h, w) at `indices` + mean colour per cell ─► convolutions ─► centre logit (B, g, g)
                                                                                └─► word logits per vocabulary
    tag token (B, N, D) = sigmoid(centre) x sum over vocabularies of softmax(word logits) @ E[words]

E[words] are rows of the decoder's input embeddings (a word of several tokens: the mean of its tokens' rows), so a
confident tag token is "red" + "circle" as the decoder reads them in text, at their scale, from the first step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .projector import pixel_shuffle_tokens
from .tags import IGNORE_TAG, TagSettings


@dataclass
class TagLogits:
    """The tagger's output on a (g_h, g_w) cell grid: centre (B, g_h, g_w) and words[i] (B, V_i, g_h, g_w)."""

    centre: torch.Tensor
    words: List[torch.Tensor]


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class CellTagger(nn.Module):
    """Encoder grids (+ the image) -> `TagLogits` on the token grid (the encoder grid after pixel shuffle s).

    in_features: the encoder's width C; reads len(settings.indices) + 1 grids, each pixel-shuffled to C s^2
    channels per cell, and with `settings.mean_rgb` = k the image's mean colour on a k x k sub-grid of each cell.
    """

    def __init__(self, in_features: int, settings: TagSettings, pixel_shuffle: int = 1) -> None:
        super().__init__()
        self.settings = settings
        self.pixel_shuffle = pixel_shuffle
        grids = len(settings.indices) + 1
        channels = grids * in_features * pixel_shuffle ** 2 + 3 * settings.mean_rgb ** 2
        hidden = settings.hidden_size
        self.body = nn.Sequential(
            LayerNorm2d(channels),
            nn.Conv2d(channels, hidden, 1), nn.GELU(),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.GELU(),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.GELU(),
        )
        self.centre = nn.Conv2d(hidden, 1, 1)
        self.words = nn.ModuleList(nn.Conv2d(hidden, len(words), 1) for words in settings.vocabularies.values())

    def forward(self, grids: Sequence[torch.Tensor], pixel_values: torch.Tensor) -> TagLogits:
        """grids: (B, C, h, w) encoder grids; pixel_values (B, 3, H, W) -> `TagLogits` on (h/s, w/s) cells."""
        cells = [pixel_shuffle_grid(grid, self.pixel_shuffle) for grid in grids]  # (B, C s^2, g_h, g_w) each
        height, width = cells[0].shape[-2:]
        k = self.settings.mean_rgb
        if k:
            colour = F.adaptive_avg_pool2d(pixel_values.to(cells[0].dtype), (height * k, width * k))
            cells.append(F.pixel_unshuffle(colour, k))  # (B, 3 k^2, g_h, g_w)
        hidden = self.body(torch.cat(cells, 1))  # (B, hidden, g_h, g_w)
        return TagLogits(self.centre(hidden)[:, 0], [head(hidden) for head in self.words])


def pixel_shuffle_grid(grid: torch.Tensor, factor: int) -> torch.Tensor:
    """(B, C, h, w) -> (B, C s^2, h/s, w/s): each s x s block of neighbours as one cell (`pixel_shuffle_tokens`'
    grouping, kept as a map)."""
    batch, _, height, width = grid.shape
    tokens = pixel_shuffle_tokens(grid, factor)  # (B, (h/s)(w/s), C s^2)
    return tokens.transpose(1, 2).reshape(batch, -1, height // factor, width // factor)


def word_embeddings(embeddings: torch.Tensor, word_ids: Sequence[Sequence[int]]) -> torch.Tensor:
    """(V_vocab, D) input embeddings, each word's token ids -> (W, D): the mean of each word's token rows."""
    return torch.stack([embeddings[list(ids)].mean(0) for ids in word_ids])


def tag_tokens(centre: torch.Tensor, words: Sequence[torch.Tensor], vocabularies: Sequence[torch.Tensor]
               ) -> torch.Tensor:
    """centre (B, g_h, g_w) in [0, 1], words[i] (B, V_i, g_h, g_w) distributions over vocabulary i whose word
    embeddings are vocabularies[i] (V_i, D) -> tag tokens (B, g_h g_w, D), row-major like the image tokens."""
    mixed = sum(torch.einsum('bvhw,vd->bhwd', p.to(e.dtype), e) for p, e in zip(words, vocabularies))  # (B, g_h, g_w, D)
    return (centre.to(mixed.dtype)[..., None] * mixed).flatten(1, 2)  # (B, N, D)


def predicted_tags(logits: TagLogits) -> TagLogits:
    """The tagger's probabilities: sigmoid of the centre logit, softmax of each vocabulary's word logits."""
    return TagLogits(logits.centre.float().sigmoid(), [w.float().softmax(1) for w in logits.words])


def annotated_tags(centres: torch.Tensor, labels: torch.Tensor, sizes: Sequence[int]) -> TagLogits:
    """Ground-truth targets as tags (the oracle): centres (B, g_h, g_w), labels (B, V, g_h, g_w) with IGNORE_TAG
    where a cell has no object -> one-hot word distributions (all zero where ignored)."""
    words = []
    for index, size in enumerate(sizes):
        label = labels[:, index]  # (B, g_h, g_w)
        one_hot = F.one_hot(label.clamp(min=0), size).permute(0, 3, 1, 2).float()  # (B, V_i, g_h, g_w)
        words.append(one_hot * (label != IGNORE_TAG)[:, None])
    return TagLogits(centres.float(), words)


def tag_loss(logits: TagLogits, centres: torch.Tensor, labels: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Binary cross-entropy of the centre logits on every cell, cross-entropy of each vocabulary's word logits on
    the cells that belong to an object; 'loss' is their sum."""
    losses = {'centre': F.binary_cross_entropy_with_logits(logits.centre.float(), centres.float())}
    for index, words in enumerate(logits.words):
        target = labels[:, index]  # (B, g_h, g_w)
        if bool((target != IGNORE_TAG).any()):
            losses[f'words{index}'] = F.cross_entropy(words.float(), target, ignore_index=IGNORE_TAG)
    losses['loss'] = sum(losses.values())
    return losses


def check_grid(logits: TagLogits, centres: Optional[torch.Tensor]) -> None:
    """Targets must be on the tagger's grid."""
    if centres is not None and tuple(centres.shape[-2:]) != tuple(logits.centre.shape[-2:]):
        raise ValueError(f'tag targets of {tuple(centres.shape[-2:])} cells for a tagger grid of '
                         f'{tuple(logits.centre.shape[-2:])}')
