"""Lightning callbacks that vlm configs can name (`trainer.callbacks: - class_path: vlm.callbacks.EncoderPruning`)."""
from .peak_memory import PeakMemory
from .pruning import EncoderPruning
from .wall_clock import WallClock

__all__ = ['EncoderPruning', 'PeakMemory', 'WallClock']
