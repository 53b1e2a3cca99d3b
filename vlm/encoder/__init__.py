"""The vlm image encoder (timm ViT with 2D RoPE and RMSNorm), the one factory that builds any encoder, its dense
features and local weight loading."""
from vlm.errors import CheckpointShapeError

from .dense_features import DenseFeatures, dense_features
from .factory import Normalization, create_encoder, encoder_normalization, resolve_local_dir
from .vit_rope_rms import ENCODER_NAMES, VisionTransformerRopeRms
from .weights import LoadReport, load_encoder_weights, read_state_dict

__all__ = [
    'CheckpointShapeError', 'ENCODER_NAMES', 'VisionTransformerRopeRms', 'DenseFeatures', 'dense_features',
    'LoadReport', 'Normalization', 'create_encoder', 'encoder_normalization', 'load_encoder_weights',
    'read_state_dict', 'resolve_local_dir',
]
