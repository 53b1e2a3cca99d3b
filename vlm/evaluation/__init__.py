"""Evaluation: COCO mAP of a results list (`evaluate_coco`) and as a torchmetrics `Metric`, caption scores and VQAv2
accuracy (functions and Metrics), results files of generated texts."""
from .caption_scores import CAPTION_METRICS, evaluate_captions
from .coco_eval import (
                        BACKENDS,
                        STAT_NAMES,
                        CocoGroundTruthError,
                        CocoStats,
                        evaluate_coco,
                        format_table,
                        load_ground_truth,
)
from .coco_metric import CocoMeanAveragePrecision
from .coco_results import IOU_TYPES, CocoEvalError, CocoResultsError, detections_to_coco_results, validate_results
from .text_metrics import CaptionScores, VqaAccuracy
from .vqa_accuracy import vqa_accuracy

__all__ = [
    'BACKENDS', 'CAPTION_METRICS', 'IOU_TYPES', 'STAT_NAMES', 'CaptionScores', 'CocoEvalError',
    'CocoGroundTruthError', 'CocoMeanAveragePrecision', 'CocoResultsError', 'CocoStats', 'VqaAccuracy',
    'detections_to_coco_results', 'evaluate_captions', 'evaluate_coco', 'format_table', 'load_ground_truth',
    'validate_results', 'vqa_accuracy',
]
