"""Lightning callbacks that vlm configs can name (`trainer.callbacks: - class_path: vlm.callbacks.EncoderPruning`)."""
from .pruning import EncoderPruning

__all__ = ['EncoderPruning']
