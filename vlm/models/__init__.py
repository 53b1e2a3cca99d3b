"""Plain `nn.Module` models on the vlm encoder, usable without Lightning: the simple feature pyramid, the ViTDet
backbone, the detector builder (FCOS / RetinaNet / Mask R-CNN) and the semantic segmenter. The vision-language
model is the transformers `PreTrainedModel` in `vlm.language`."""
from .detector import DEFAULT_LEVELS, DETECTORS, build_detector
from .pyramid import SimpleFeaturePyramid
from .segmenter import INFERENCE_MODES, SemanticSegmentationModel
from .sliding_window import slide_inference, window_starts
from .vitdet_backbone import ViTDetBackbone

__all__ = ['DEFAULT_LEVELS', 'DETECTORS', 'INFERENCE_MODES', 'SemanticSegmentationModel', 'SimpleFeaturePyramid',
           'ViTDetBackbone', 'build_detector', 'slide_inference', 'window_starts']
