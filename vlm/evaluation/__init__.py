"""Evaluation: COCO mAP of a results list (`evaluate_coco`) and as a torchmetrics `Metric`, caption scores and VQAv2
accuracy (functions and Metrics), results files of generated texts. Names are imported from their modules when
first used (pycocotools, torchmetrics and torch only then)."""
import importlib
from typing import Any

_WHERE = {
    'BACKENDS': 'choices', 'STAT_NAMES': 'coco_eval', 'CocoGroundTruthError': 'coco_eval', 'CocoStats': 'coco_eval',
    'evaluate_coco': 'coco_eval', 'format_table': 'coco_eval', 'load_ground_truth': 'coco_eval',
    'CocoMeanAveragePrecision': 'coco_metric', 'IOU_TYPES': 'choices', 'CocoEvalError': 'coco_results',
    'CocoResultsError': 'coco_results', 'detections_to_coco_results': 'coco_results',
    'validate_results': 'coco_results', 'CAPTION_METRICS': 'caption_scores', 'evaluate_captions': 'caption_scores',
    'CaptionScores': 'text_metrics', 'VqaAccuracy': 'text_metrics', 'vqa_accuracy': 'vqa_accuracy',
    'ConversationAccuracy': 'text_metrics', 'TEXT_METRICS': 'text_metrics', 'build_text_metrics': 'text_metrics',
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'vlm.evaluation' has no attribute {name!r}")
    return getattr(importlib.import_module(f'{__name__}.{_WHERE[name]}'), name)
