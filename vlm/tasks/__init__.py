"""One LightningModule per task, all on the same encoder."""
from .base import VlmTask
from .classification import ImageClassifier

__all__ = ['VlmTask', 'ImageClassifier']
