"""COCO evaluation: mAP of a results list (`evaluate_coco`), its checks, and conversion from model outputs."""
from vlm.evaluation.coco_eval import (BACKENDS, STAT_NAMES, CocoGroundTruthError, CocoStats, evaluate_coco,
                                      format_table, load_ground_truth)
from vlm.evaluation.coco_results import (IOU_TYPES, CocoEvalError, CocoResultsError, detections_to_coco_results,
                                         validate_results)

__all__ = [
    'BACKENDS', 'IOU_TYPES', 'STAT_NAMES', 'CocoEvalError', 'CocoGroundTruthError', 'CocoResultsError', 'CocoStats',
    'detections_to_coco_results', 'evaluate_coco', 'format_table', 'load_ground_truth', 'validate_results',
]
