"""Tiny demo models: an exported VLM folder, a detection and a segmentation checkpoint (random weights, seconds)."""
from pathlib import Path

import torch

from tests.language.tiny import export_tiny_model
from vlm.tasks import ObjectDetector, SemanticSegmenter

ENCODER = dict(encoder='vlm_vit_tiny_patch16_rope_rms',
               encoder_kwargs=dict(patch_size=8, img_size=64, depth=2, embed_dim=64, num_heads=2))
CLASSES = ['background', 'circle', 'square', 'star']


def _save(task, path: Path) -> Path:
    torch.save({'state_dict': task.state_dict(), 'hyper_parameters': dict(task.hparams)}, path)
    return path


def demo_models(folder: Path) -> dict:
    """{'model': VLM folder, 'detector': checkpoint, 'segmenter': checkpoint} under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    export_tiny_model(folder / 'vlm')
    torch.manual_seed(0)
    # every detection kept (score_thresh 0): random weights still draw boxes
    detector = ObjectDetector(num_classes=4, class_names=CLASSES, detector='fcos', pyramid_channels=64, min_size=64,
                              max_size=64, score_thresh=0.0, detections_per_img=30, **ENCODER)
    segmenter = SemanticSegmenter(num_classes=4, class_names=CLASSES, pyramid_channels=32, head_channels=32, **ENCODER)
    return {'model': folder / 'vlm', 'detector': _save(detector, folder / 'detector.ckpt'),
            'segmenter': _save(segmenter, folder / 'segmenter.ckpt')}
