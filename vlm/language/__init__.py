"""The vision-language model: config, model, processor, predictor; registered with transformers' Auto classes,
so `AutoConfig` / `AutoModel` / `AutoModelForImageTextToText` / `AutoProcessor` / `AutoImageProcessor`
`.from_pretrained(dir)` work after `import vlm.language`."""
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageTextToText,
    AutoProcessor,
)

from .configuration import VisionLanguageConfig
from .image_processor import VisionLanguageImageProcessor
from .inference import Answer, VisionLanguagePredictor
from .modeling import ImageTokenMismatchError, VisionLanguageModel
from .processor import PromptTooLongError, VisionLanguageProcessor

AutoConfig.register(VisionLanguageConfig.model_type, VisionLanguageConfig, exist_ok=True)
AutoModel.register(VisionLanguageConfig, VisionLanguageModel, exist_ok=True)
AutoModelForImageTextToText.register(VisionLanguageConfig, VisionLanguageModel, exist_ok=True)
AutoProcessor.register(VisionLanguageConfig, VisionLanguageProcessor, exist_ok=True)
AutoImageProcessor.register(VisionLanguageConfig, image_processor_classes={'torchvision': VisionLanguageImageProcessor},
                            exist_ok=True)

__all__ = ['VisionLanguageConfig', 'VisionLanguageModel', 'VisionLanguageProcessor', 'VisionLanguageImageProcessor',
           'VisionLanguagePredictor',
           'Answer', 'ImageTokenMismatchError', 'PromptTooLongError']
