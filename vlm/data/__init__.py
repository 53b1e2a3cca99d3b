"""Datasets, transforms and LightningDataModules for COCO, VQAv2, LLaVA conversations, ImageNet-style folders,
label-map segmentation, and the embedded shapes dataset (generated in the same formats)."""
from vlm.errors import DataError
from vlm.io.images import load_rgb

from .captions import CocoCaptions
from .coco_instances import CocoInstances, semantic_map_from_instances
from .coco_json import CategoryMap, CocoIndex
from .conversations import LlavaConversations, read_conversations
from .datamodule_base import VlmDataModule, ensure_shapes
from .datamodules import ClassificationDataModule, CocoDataModule, SegmentationDataModule
from .image_folder import ClassificationFolder
from .segmentation import CocoSemantic, SegmentationFolder
from .skipping import SkipCounter, SkippedSample
from .vision_language import VisionLanguageDataModule
from .vqa import VqaV2

__all__ = [
    'CategoryMap', 'ClassificationDataModule', 'ClassificationFolder', 'CocoCaptions', 'CocoDataModule',
    'CocoIndex', 'CocoInstances', 'CocoSemantic', 'DataError', 'LlavaConversations', 'SegmentationDataModule', 'SegmentationFolder',
    'SkipCounter', 'SkippedSample', 'VisionLanguageDataModule', 'VlmDataModule', 'VqaV2', 'ensure_shapes', 'load_rgb',
    'read_conversations', 'semantic_map_from_instances',
]
