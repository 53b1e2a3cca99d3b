"""Reading and writing files: JSON (annotations, results, metrics) and images. The bottom layer of vlm: it imports
nothing of vlm but `vlm.errors`."""
from .images import DEFAULT_MAX_IMAGE_PIXELS, load_image_tensor, load_rgb, to_rgb
from .json_files import is_id, read_json, require, write_json

__all__ = ['DEFAULT_MAX_IMAGE_PIXELS', 'is_id', 'load_image_tensor', 'load_rgb', 'read_json', 'require', 'to_rgb',
           'write_json']
