"""The vlm image encoder (timm ViT with 2D RoPE and RMSNorm), its dense features and local weight loading."""
from .dense_features import DenseFeatures, dense_features
from .vit_rope_rms import ENCODER_NAMES, VisionTransformerRopeRms
from .weights import CheckpointShapeError, LoadReport, load_encoder_weights, read_state_dict

__all__ = [
    'ENCODER_NAMES', 'VisionTransformerRopeRms', 'DenseFeatures', 'dense_features',
    'CheckpointShapeError', 'LoadReport', 'load_encoder_weights', 'read_state_dict',
]
