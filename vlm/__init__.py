"""vlm: one RoPE/RMSNorm ViT encoder for classification, detection, segmentation and a Llama VLM.

Importing vlm registers the encoders in timm's model registry (`timm.create_model('vlm_vit_small_patch16_rope_rms')`)
and the vision-language model's config, model, processor and image processor with transformers' Auto classes
(`AutoProcessor.from_pretrained(folder)` of a `vlm export` folder). The `vlm` command starts through `vlm_launcher`,
which defers that (and torch) until a subcommand needs it, so `vlm --help` answers at once.
"""
import sys
from typing import Any

__version__ = '0.2.0'
__all__ = ['ENCODER_NAMES', 'create_encoder', 'dense_features', 'load_encoder_weights', 'load_weights', '__version__']


def __getattr__(name: str) -> Any:  # the encoder's names, imported when first used
    if name in ('ENCODER_NAMES', 'create_encoder', 'dense_features', 'load_encoder_weights', 'load_weights'):
        from . import encoder

        return encoder.load_encoder_weights if name == 'load_weights' else getattr(encoder, name)
    if name == 'encoder':
        import importlib

        return importlib.import_module('vlm.encoder')
    raise AttributeError(f"module 'vlm' has no attribute {name!r}")


if 'vlm_launcher' not in sys.modules:
    from .io.library_notes import drop_library_notes  # noqa: E402

    drop_library_notes()  # before transformers imports torchao: torch would log a note about its Enums
    from . import encoder  # noqa: F401,E402  (registers the timm models)
    from . import language  # noqa: F401,E402  (registers the transformers Auto classes)
