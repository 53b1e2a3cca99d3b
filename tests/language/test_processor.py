"""The processor is a transformers `ProcessorMixin`: saved by its `save_pretrained`, found by `AutoProcessor` /
`AutoImageProcessor` after `import vlm`, padded by the tokenizer; folders written by earlier vlm versions still load.
The processor and the collator travel pickled to spawned loader workers."""
import json
import pickle
import random

import torch
from transformers import AutoImageProcessor, AutoProcessor, ProcessorMixin

import vlm  # noqa: F401  (registers the Auto classes)
from vlm.language.collator import VisionLanguageCollator
from vlm.language.image_processor import VisionLanguageImageProcessor
from vlm.language.processor import VisionLanguageProcessor
from vlm.language.prompts import caption_prompt, target_text, vqa_prompt
from vlm.language.records import CaptionRecord
from vlm.language.tokenizer import IGNORE_INDEX

from .tiny import CAPTIONS, export_tiny_model, random_images, tiny_model

PROMPTS = [caption_prompt(), vqa_prompt('what color is the circle?'), vqa_prompt('how many stars are there?')]


def _same_batches(first: VisionLanguageProcessor, second: VisionLanguageProcessor) -> None:
    images = random_images(3)
    for side in ('left', 'right'):
        a = first(PROMPTS, images, [target_text('red')] * 3, padding_side=side)
        b = second(PROMPTS, images, [target_text('red')] * 3, padding_side=side)
        assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def test_auto_processor_loads_the_exported_folder_after_import_vlm(tmp_path):
    folder = export_tiny_model(tmp_path / 'model')
    config = json.loads((folder / 'processor_config.json').read_text())
    assert config['processor_class'] == 'VisionLanguageProcessor'
    assert config['image_processor']['image_processor_type'] == 'VisionLanguageImageProcessor'
    processor = AutoProcessor.from_pretrained(folder)
    assert isinstance(processor, VisionLanguageProcessor) and isinstance(processor, ProcessorMixin)
    _, original = tiny_model()
    assert processor.image_processor.to_dict() == original.image_processor.to_dict()
    assert processor.max_length == original.max_length and processor.tags == original.tags
    _same_batches(processor, original)
    image_processor = AutoImageProcessor.from_pretrained(folder)
    assert isinstance(image_processor, VisionLanguageImageProcessor)
    assert torch.equal(image_processor(random_images(2))['pixel_values'], original.pixel_values(random_images(2)))


def test_a_folder_of_the_earlier_format_still_loads(tmp_path):
    """processor_config.json as vlm 0.2 wrote it before the ProcessorMixin: {'image_settings', 'max_length',
    'tags'}."""
    folder = export_tiny_model(tmp_path / 'model')
    _, original = tiny_model()
    settings = original.image_processor
    (folder / 'processor_config.json').write_text(json.dumps({
        'image_settings': {'image_size': settings.image_size, 'patch_size': settings.patch_size,
                           'pixel_shuffle': settings.pixel_shuffle, 'image_mean': settings.image_mean,
                           'image_std': settings.image_std},
        'max_length': original.max_length, 'tags': None}))
    for loaded in (VisionLanguageProcessor.from_pretrained(folder), AutoProcessor.from_pretrained(folder)):
        _same_batches(loaded, original)


def test_padding_is_the_tokenizers_and_labels_follow_it():
    _, processor = tiny_model()
    images = random_images(2)
    for side in ('left', 'right'):
        batch = processor(PROMPTS[:2], images, [target_text('red'), target_text('a blue square')],
                          padding_side=side)
        pad = processor.tokenizer.pad_token_id
        for row in range(2):
            single = processor([PROMPTS[row]], [images[row]], [target_text(['red', 'a blue square'][row])])
            length = single['input_ids'].shape[1]
            kept = slice(-length, None) if side == 'left' else slice(0, length)
            dropped = slice(0, -length) if side == 'left' else slice(length, None)
            assert torch.equal(batch['input_ids'][row, kept], single['input_ids'][0])
            assert torch.equal(batch['labels'][row, kept], single['labels'][0])
            assert (batch['input_ids'][row, dropped] == pad).all()
            assert (batch['attention_mask'][row, dropped] == 0).all()
            assert (batch['labels'][row, dropped] == IGNORE_INDEX).all()
            assert (batch['attention_mask'][row, kept] == 1).all()


def test_the_processor_travels_to_loader_workers_and_decodes_as_transformers_does():
    """Pickled (spawned loader workers, DDP) it gives the same batches; `batch_decode` is the tokenizer's."""
    _, processor = tiny_model()
    _same_batches(pickle.loads(pickle.dumps(processor)), processor)
    ids = processor([PROMPTS[0]], targets=[target_text('red')])['input_ids']
    assert processor.batch_decode(ids) == processor.tokenizer.batch_decode(ids)


def test_the_collator_pickles_for_spawned_loader_workers():
    """A spawned or forkserver worker receives the collator pickled; it draws texts from Python's `random`, which
    torch seeds in each worker: the same seed, the same texts."""
    _, processor = tiny_model()
    record = CaptionRecord(random_images(1)[0], CAPTIONS, image_id=1)
    collator = VisionLanguageCollator(processor, training=True, texts_per_image=2)
    again = pickle.loads(pickle.dumps(collator))
    drawn = []
    for seed in (0, 0, 1):
        random.seed(seed)
        first = collator([record])['inputs']['input_ids']
        random.seed(seed)
        assert torch.equal(again([record])['inputs']['input_ids'], first)
        drawn.append(first)
    assert first.shape[0] == 2 and torch.equal(drawn[0], drawn[1]) and not torch.equal(drawn[0], drawn[2])
