"""vlm: one RoPE/RMSNorm ViT encoder for classification, detection, segmentation and a Llama VLM.

Importing vlm registers the encoders in timm's model registry (`timm.create_model('vlm_vit_small_patch16_rope_rms')`).
"""
from . import encoder  # noqa: F401  (registers the timm models)
from .encoder import ENCODER_NAMES, create_encoder, dense_features, load_encoder_weights

load_weights = load_encoder_weights  # any module: a task checkpoint's weights found under their prefix

__version__ = '0.2.0'
__all__ = ['ENCODER_NAMES', 'create_encoder', 'dense_features', 'load_encoder_weights', 'load_weights', '__version__']
