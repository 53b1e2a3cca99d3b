"""One LightningModule per task, all on the same encoder."""
from .base import VlmTask
from .classification import ImageClassifier
from .detection import ObjectDetector
from .segmentation import SemanticSegmenter
from .vision_language import VisionLanguageTask

__all__ = ['VlmTask', 'ImageClassifier', 'ObjectDetector', 'SemanticSegmenter', 'VisionLanguageTask']
