"""Every kind of bad input gets a clear error naming the file / record / field, or a counted skip."""
import json
import logging
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from tests.data import fixtures
from vlm.data import (
    ClassificationFolder,
    CocoInstances,
    DataError,
    SegmentationFolder,
    SkippedSample,
    load_rgb,
)
from vlm.data.collate import collate_classification, collate_detection
from vlm.data.skip_report import BadSampleReport


@pytest.fixture
def coco(tmp_path):
    fixtures.coco_2017(tmp_path)
    return tmp_path, tmp_path / 'annotations/instances_val2017.json'


def _edit_annotation(path, ann_id, **changes):
    data = json.loads(path.read_text())
    for ann in data['annotations']:
        if ann['id'] == ann_id:
            for key, value in changes.items():
                if value is None:
                    del ann[key]
                else:
                    ann[key] = value
    path.write_text(json.dumps(data))


@pytest.mark.parametrize('change, field, reason', [
    (dict(bbox=[5.0, 10.0, 0.0, 20.0]), 'bbox', 'zero or negative size'),
    (dict(bbox=[5.0, 10.0, 20.0, -3.0]), 'bbox', 'zero or negative size'),
    (dict(bbox=[50.0, 10.0, 30.0, 20.0]), 'bbox', 'outside the image'),
    (dict(bbox=[5.0, 10.0, 20.0]), 'bbox', '4 finite numbers'),
    (dict(bbox=[5.0, float('nan'), 20.0, 3.0]), 'bbox', '4 finite numbers'),
    (dict(category_id=999), 'category_id', 'unknown category id 999'),
    (dict(category_id=None), 'category_id', 'missing required field'),
    (dict(image_id=5), 'image_id', 'unknown image id 5'),
])
def test_bad_annotations_are_named_or_skipped(coco, change, field, reason):
    root, path = coco
    _edit_annotation(path, 2, **change)
    with pytest.raises(DataError) as error:
        CocoInstances(root / 'val2017', path)
    message = str(error.value)
    assert str(path) in message and 'annotation id 2' in message and f"field '{field}'" in message
    assert reason in message
    dataset = CocoInstances(root / 'val2017', path, skip_bad_samples=True)
    assert dataset.skipped.counts == Counter({field: 1})
    _, target = dataset[0]
    assert target['labels'].tolist() == [1]  # the good annotation of that image survives


def test_missing_segmentation_when_masks_are_needed(coco):
    root, path = coco
    _edit_annotation(path, 1, segmentation=None)
    with pytest.raises(DataError, match="annotation id 1, field 'segmentation'"):
        CocoInstances(root / 'val2017', path, with_masks=True)


def test_missing_top_level_field(tmp_path):
    path = tmp_path / 'instances.json'
    path.write_text(json.dumps({'images': [], 'annotations': []}))
    with pytest.raises(DataError, match="field 'categories'"):
        CocoInstances(tmp_path, path)


def test_corrupt_truncated_and_missing_images(coco):
    root, path = coco
    image_dir = root / 'val2017'
    (image_dir / '000000000139.jpg').write_bytes(b'not an image at all')
    full = (image_dir / '000000000285.jpg').read_bytes()
    (image_dir / '000000000285.jpg').write_bytes(full[: len(full) // 2])
    (image_dir / '000000000632.jpg').unlink()
    dataset = CocoInstances(image_dir, path)
    for i, name in enumerate(('000000000139.jpg', '000000000285.jpg', '000000000632.jpg')):
        with pytest.raises(DataError, match=name):
            dataset[i]
    skipping = CocoInstances(image_dir, path, skip_bad_samples=True)
    batch = collate_detection([skipping[i] for i in range(3)])
    assert batch['images'] == [] and batch['skipped'] == Counter({'image': 2, 'file_name': 1})


def test_image_size_disagreeing_with_json(coco):
    root, path = coco
    fixtures.write_image(root / 'val2017' / '000000000139.jpg', 10, 10)
    with pytest.raises(DataError, match='000000000139.jpg.*image id 139.*width/height'):
        CocoInstances(root / 'val2017', path)[0]


@pytest.mark.parametrize('mode', ['L', 'RGBA', 'CMYK', 'P', 'I;16', '1', 'LA'])
def test_unusual_image_modes_are_converted(tmp_path, mode):
    path = tmp_path / ('image.tif' if mode in ('CMYK',) else 'image.png')
    array = np.random.default_rng(0).integers(0, 255, (12, 10, 3), dtype=np.uint8)
    if mode == 'I;16':
        Image.fromarray(array[..., 0].astype(np.uint16) * 257).save(path)  # uint16 -> mode I;16
    else:
        Image.fromarray(array).convert(mode).save(path)
    image = load_rgb(path)
    assert image.mode == 'RGB' and image.size == (10, 12)
    if mode == 'I;16':
        np.testing.assert_array_equal(np.asarray(image)[..., 0], array[..., 0])  # 16-bit range scaled to 8-bit


def test_classification_folder_bad_image(tmp_path):
    fixtures.imagenet(tmp_path)
    bad = tmp_path / 'train' / 'n01440764' / 'n01440764_0.JPEG'
    bad.write_bytes(b'\xff\xd8\xff garbage')
    with pytest.raises(DataError, match='n01440764_0.JPEG'):
        ClassificationFolder(tmp_path / 'train')[0]
    dataset = ClassificationFolder(tmp_path / 'train', transform=lambda im: torch.zeros(3, 4, 4), skip_bad_samples=True)
    assert isinstance(dataset[0], SkippedSample)
    batch = collate_classification([dataset[i] for i in range(len(dataset))])
    assert batch['images'].shape == (3, 3, 4, 4) and batch['skipped'] == Counter({'image': 1})


def test_label_map_of_wrong_size_or_values(tmp_path):
    fixtures.ade20k(tmp_path, num_classes=4)
    labels = tmp_path / 'annotations' / 'training'
    Image.fromarray(np.zeros((10, 10), np.uint8), mode='L').save(labels / 'ADE_training_00000000.png')
    Image.fromarray(np.full((28, 36), 7, np.uint8), mode='L').save(labels / 'ADE_training_00000001.png')
    dataset = SegmentationFolder(tmp_path / 'images/training', labels, num_classes=4)
    with pytest.raises(DataError, match="ADE_training_00000000.png, field 'size'"):
        dataset[0]
    with pytest.raises(DataError, match=r"ADE_training_00000001.png, field 'label values': values \[7\]"):
        dataset[1]
    Image.fromarray(np.full((28, 36), 255, np.uint8), mode='L').save(labels / 'ADE_training_00000001.png')
    assert dataset[1][1].eq(255).all()  # the ignore value is allowed


def test_image_without_label_map_is_named(tmp_path):
    fixtures.ade20k(tmp_path)
    (tmp_path / 'annotations/validation/ADE_validation_00000001.png').unlink()
    with pytest.raises(DataError, match='ADE_validation_00000001.jpg.*no label map'):
        SegmentationFolder(tmp_path / 'images/validation', tmp_path / 'annotations/validation', num_classes=4)


def test_skips_are_reported_once_per_epoch_with_the_count(caplog):
    report = BadSampleReport()
    for batch in ({'skipped': Counter({'image': 2})}, {'skipped': Counter()}, {'skipped': Counter({'bbox': 1})}):
        report.on_train_batch_start(None, None, batch, 0)

    class Module:
        logged = {}

        def log(self, name, value, **kwargs):
            self.logged[name] = value

    class Trainer:
        current_epoch = 4

    module = Module()
    with caplog.at_level(logging.WARNING):
        report.on_train_epoch_end(Trainer(), module)
        report.on_train_epoch_end(Trainer(), module)  # nothing new: no second warning
    warnings = [r.getMessage() for r in caplog.records if 'skipped' in r.getMessage()]
    assert warnings == ['train epoch 4: skipped 3 bad samples (bbox: 1, image: 2)']
    assert module.logged == {'train/skipped_samples': 3.0}
