"""The demo's vision models: a detection and a semantic segmentation checkpoint of `vlm fit`, run on one image and
drawn (`vlm.drawing`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple, Union

import torch

from vlm.drawing import draw_detections, draw_label_map
from vlm.errors import CheckpointShapeError, DataError
from vlm.tasks import ObjectDetector, SemanticSegmenter


def _load(kind: type, path: Union[str, Path], what: str):
    """A task of `kind` from its checkpoint, in eval mode; a checkpoint of another kind or shape is a `DataError`
    naming the file."""
    try:
        return kind.load_from_checkpoint(path, map_location='cpu').eval()
    except DataError:
        raise
    except (CheckpointShapeError, TypeError, KeyError, ValueError, RuntimeError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise DataError(path, f'not a {what} checkpoint of `vlm fit` ({type(error).__name__}: {first[:200]})') from None


def enlarged(tensor: torch.Tensor, scale: int) -> torch.Tensor:
    """(..., H, W) -> (..., sH, sW), each pixel repeated s x s times (nearest neighbour)."""
    return tensor if scale == 1 else tensor.repeat_interleave(scale, -2).repeat_interleave(scale, -1)


@dataclass
class Detection:
    label: str
    score: float
    box: Tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels


class DemoDetector:
    """An `ObjectDetector` checkpoint: image (3, H, W) uint8 -> detections at or above `score_threshold`, and the
    image with their boxes (and masks, for Mask R-CNN) drawn."""

    def __init__(self, checkpoint: Union[str, Path], score_threshold: Optional[float] = None) -> None:
        self.task = _load(ObjectDetector, checkpoint, 'detection')
        self.score_threshold = self.task.draw_score_thresh if score_threshold is None else score_threshold
        names = self.task.hparams.class_names
        self.class_names: List[str] = list(names) if names else [str(k) for k in range(self.task.hparams.num_classes)]

    @torch.inference_mode()
    def __call__(self, image: torch.Tensor, scale: int = 1) -> Tuple[torch.Tensor, List[Detection]]:
        """image (3, H, W) uint8 -> ((3, sH, sW) uint8 drawn, detections by decreasing score, in image pixels);
        scale s: draw on the image enlarged s times (a small image's captions stay readable)."""
        output = self.task.detections([image.float() / 255.0])[0]
        keep = output['scores'] >= self.score_threshold
        boxes, scores, labels = output['boxes'][keep], output['scores'][keep], output['labels'][keep]
        detections = [Detection(self.class_names[int(label)], float(score), tuple(float(v) for v in box))
                      for box, score, label in zip(boxes, scores, labels)]
        captions = [f'{d.label} {d.score:.2f}' for d in detections]
        masks = enlarged(output['masks'][keep], scale) if 'masks' in output else None  # (N, sH, sW) bool
        drawn = draw_detections(enlarged(image, scale), boxes * scale, labels.tolist(), captions, masks)
        return drawn, detections


class DemoSegmenter:
    """A `SemanticSegmenter` checkpoint: image (3, H, W) uint8 -> label map (H, W) and the image with it blended
    in, each class in its colour."""

    def __init__(self, checkpoint: Union[str, Path]) -> None:
        self.task = _load(SemanticSegmenter, checkpoint, 'segmentation')
        mean, std = self.task.normalization
        self.mean, self.std = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
        self.blank = [k for k, name in enumerate(self.task.class_names) if name.lower() == 'background']

    @torch.inference_mode()
    def __call__(self, image: torch.Tensor, scale: int = 1) -> Tuple[torch.Tensor, List[str]]:
        """image (3, H, W) uint8 -> ((3, sH, sW) uint8 overlay, the names of the classes found)."""
        normalised = (image.float() / 255.0 - self.mean) / self.std  # (3, H, W)
        labels = self.task.infer(normalised[None]).argmax(1)[0]  # (H, W)
        overlay = draw_label_map(enlarged(image, scale), enlarged(labels, scale), self.task.num_classes, self.blank)
        found = [self.task.class_names[int(k)] for k in labels.unique() if int(k) not in self.blank]
        return overlay, found
