"""LLaVA conversation files: the reader, its errors (file, record id, field), counted skips, the dataset under two
loader workers, and the mixture of datasets by weights."""
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from vlm.data import LlavaConversations, read_conversations
from vlm.data.collate import collate_records
from vlm.language.records import ConversationRecord
from vlm.data.sampling import MixtureShuffle
from vlm.errors import DataError

GOOD = [
    {'id': 'a', 'image': 'a.png', 'conversations': [
        {'from': 'human', 'value': '<image>\nwhat color is the circle?'}, {'from': 'gpt', 'value': 'red'},
        {'from': 'human', 'value': 'how many stars?'}, {'from': 'gpt', 'value': '2'}]},
    {'id': 7, 'image': ['a.png', 'b.png'], 'conversations': [
        {'from': 'system', 'value': 'Answer in one word.'},
        {'from': 'human', 'value': '<image>\n<image>\nwhich has more stars?'}, {'from': 'gpt', 'value': 'second'}]},
    {'id': 'text', 'conversations': [{'from': 'user', 'value': 'hello'}, {'from': 'assistant', 'value': 'hi'}]},
]


def _folder(tmp_path: Path, records) -> Path:
    images = tmp_path / 'images'
    images.mkdir(exist_ok=True)
    for name, value in (('a.png', 40), ('b.png', 200)):
        Image.fromarray(np.full((16, 20, 3), value, np.uint8)).save(images / name)
    path = tmp_path / 'conversations.json'
    path.write_text(json.dumps(records))
    return path


def test_reads_llava_records_with_one_two_or_no_images(tmp_path):
    path = _folder(tmp_path, GOOD)
    single, double, text = read_conversations(path, tmp_path / 'images')
    assert single.id == 'a' and single.images == [tmp_path / 'images' / 'a.png']
    assert [m['role'] for m in single.messages] == ['user', 'assistant', 'user', 'assistant']
    assert single.messages[0]['content'] == '<image>\nwhat color is the circle?'
    assert double.id == '7' and [p.name for p in double.images] == ['a.png', 'b.png']
    assert double.messages[0] == {'role': 'system', 'content': 'Answer in one word.'}
    assert text.images == [] and text.messages[1] == {'role': 'assistant', 'content': 'hi'}
    item = LlavaConversations(tmp_path / 'images', path)[1]
    assert isinstance(item, ConversationRecord) and item.id == '7' and item.messages == double.messages
    assert [tuple(image.shape) for image in item.images] == [(3, 16, 20)] * 2
    assert int(item.images[0].float().mean()) == 40 and int(item.images[1].float().mean()) == 200


BAD = {
    'no conversations': ({'id': 'x', 'image': 'a.png'}, 'conversations', 'non-empty list'),
    'empty conversations': ({'id': 'x', 'image': 'a.png', 'conversations': []}, 'conversations', 'non-empty'),
    'unknown role': ({'id': 'x', 'image': 'a.png', 'conversations': [
        {'from': 'human', 'value': '<image>\nhi'}, {'from': 'bot', 'value': 'red'}]}, 'from', "unknown role 'bot'"),
    'no text': ({'id': 'x', 'conversations': [{'from': 'human', 'value': 3}, {'from': 'gpt', 'value': 'a'}]},
                'value', 'not a string'),
    'no gpt turn': ({'id': 'x', 'conversations': [{'from': 'human', 'value': 'hi'}]}, 'conversations',
                    'no gpt turn'),
    'too few placeholders': ({'id': 'x', 'image': ['a.png', 'b.png'], 'conversations': [
        {'from': 'human', 'value': '<image>\nhi'}, {'from': 'gpt', 'value': 'red'}]}, 'image',
        '1 <image> placeholders in the turns for 2 images'),
    'placeholder without image': ({'id': 'x', 'conversations': [
        {'from': 'human', 'value': '<image>\nhi'}, {'from': 'gpt', 'value': 'red'}]}, 'image', 'for 0 images'),
    'missing image': ({'id': 'x', 'image': 'gone.png', 'conversations': [
        {'from': 'human', 'value': '<image>\nhi'}, {'from': 'gpt', 'value': 'red'}]}, 'image', 'gone.png'),
    'image not a path': ({'id': 'x', 'image': 5, 'conversations': GOOD[0]['conversations']}, 'image', 'path'),
    'no id': ({'image': 'a.png', 'conversations': GOOD[0]['conversations']}, 'id', 'missing'),
    'duplicate id': ({**GOOD[0]}, 'id', "duplicate id 'a'"),
}


@pytest.mark.parametrize('case', sorted(BAD))
def test_a_bad_record_names_the_file_the_record_and_the_field(tmp_path, case):
    record, field, words = BAD[case]
    path = _folder(tmp_path, [GOOD[0], record])
    with pytest.raises(DataError) as caught:
        read_conversations(path, tmp_path / 'images')
    message = str(caught.value)
    assert str(path) in message and '[1]' in message and f"field '{field}'" in message and words in message, message
    if 'id' in record and case != 'duplicate id':
        assert "(id 'x')" in message


def test_bad_records_are_counted_and_skipped_when_asked(tmp_path):
    path = _folder(tmp_path, [BAD['unknown role'][0], GOOD[0], BAD['missing image'][0] | {'id': 'y'}, GOOD[2]])
    dataset = LlavaConversations(tmp_path / 'images', path, skip_bad_samples=True)
    assert [record.id for record in dataset.records] == ['a', 'text']
    assert dataset.skipped.counts == Counter({'from': 1, 'image': 1})


def test_an_image_that_breaks_after_reading_is_one_error_under_two_workers(tmp_path):
    """A file that is there when the JSON is read but corrupt when loaded: a DataError naming the conversation
    file, the record and the image, raised through two loader workers; skipped and counted when asked."""
    path = _folder(tmp_path, GOOD)
    dataset = LlavaConversations(tmp_path / 'images', path)
    (tmp_path / 'images' / 'b.png').write_bytes(b'not a png')
    loader = DataLoader(dataset, batch_size=1, num_workers=2, collate_fn=collate_records)
    with pytest.raises(Exception) as caught:
        list(loader)
    message = str(caught.value)
    assert str(path) in message and "id '7'" in message and 'b.png' in message and "field 'image'" in message
    skipping = LlavaConversations(tmp_path / 'images', path, skip_bad_samples=True)
    batches = list(DataLoader(skipping, batch_size=3, num_workers=2, collate_fn=collate_records))
    assert sum(batch['skipped']['image'] for batch in batches) == 1


def test_the_mixture_draws_by_weight_covers_each_part_and_repeats_by_epoch():
    sampler = MixtureShuffle([100, 30], [1, 3], seed=5, length=4000)
    keys = list(sampler)
    assert len(keys) == len(sampler) == 4000 and {epoch for epoch, _ in keys} == {0}
    second = sum(index >= 100 for _, index in keys) / len(keys)
    assert abs(second - 0.75) < 0.03
    first_pass = [index for _, index in keys if index >= 100][:30]
    assert sorted(first_pass) == list(range(100, 130))  # each pass over a part is a permutation of it
    assert list(sampler) == keys
    sampler.set_epoch(1)
    assert [index for _, index in sampler] != [index for _, index in keys]
    assert len(MixtureShuffle([100, 30], [1, 3])) == 130
    with pytest.raises(ValueError, match='weights'):
        MixtureShuffle([10, 0], [0, 1])


def test_the_datamodule_mixes_captions_and_conversations_by_weights(tmp_path):
    from vlm.data import VisionLanguageDataModule
    from vlm.data.shapes import generate_shapes

    root = generate_shapes(tmp_path / 'shapes', train_images=16, val_images=4, image_size=64,
                           classification_images_per_class=0, classification_val_images_per_class=0, workers=1)
    data = VisionLanguageDataModule(
        root=str(root), tasks=['captions', 'conversations'], val_tasks=['conversations'],
        mixture_weights={'captions': 1, 'conversations': 3}, samples_per_epoch=64, train_images='images/train',
        val_images='images/val', train_captions='annotations/captions_train.json',
        val_captions='annotations/captions_val.json', train_conversations='annotations/conversations_train.json',
        val_conversations='annotations/conversations_val.json', batch_size=4, num_workers=0)
    data.setup('fit')
    kinds = Counter()
    for batch in data.train_dataloader():
        kinds.update(type(record).__name__ for record in batch['items'])
    kinds = {'caption': kinds['CaptionRecord'], 'conversation': kinds['ConversationRecord']}
    assert sum(kinds.values()) == 64 and kinds['conversation'] > kinds['caption'] > 0
    assert len(data.datasets['val']) == 4 + 1  # val: conversations only (4 images, one pair)
    with pytest.raises(ValueError, match='mixture_weights'):
        VisionLanguageDataModule(root=str(root), tasks=['captions'], mixture_weights={'vqa': 1})
