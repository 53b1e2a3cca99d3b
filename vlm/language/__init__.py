"""The vision-language model: config, model, processor, predictor; registered with transformers' Auto classes,
so `AutoConfig` / `AutoModel` / `AutoModelForImageTextToText.from_pretrained(dir)` work after `import vlm.language`."""
from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText

from .configuration import VisionLanguageConfig
from .inference import Answer, VisionLanguagePredictor
from .modeling import ImageTokenMismatchError, VisionLanguageModel
from .processor import PromptTooLongError, VisionLanguageProcessor

AutoConfig.register(VisionLanguageConfig.model_type, VisionLanguageConfig, exist_ok=True)
AutoModel.register(VisionLanguageConfig, VisionLanguageModel, exist_ok=True)
AutoModelForImageTextToText.register(VisionLanguageConfig, VisionLanguageModel, exist_ok=True)

__all__ = ['VisionLanguageConfig', 'VisionLanguageModel', 'VisionLanguageProcessor', 'VisionLanguagePredictor',
           'Answer', 'ImageTokenMismatchError', 'PromptTooLongError']
