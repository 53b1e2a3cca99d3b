"""Readers on tiny fixtures in the real layouts: COCO 2017, VQAv2, ImageNet, ADE20K."""
import numpy as np
import pytest
import torch
from pycocotools.coco import COCO

from tests.data import fixtures
from vlm.data import (
    CategoryMap,
    ClassificationDataModule,
    CocoCaptions,
    CocoDataModule,
    CocoInstances,
    CocoSemantic,
    SegmentationDataModule,
    VqaV2,
)
from vlm.language.records import CaptionRecord, VqaRecord


def test_coco_instances_boxes_labels_masks(tmp_path):
    fixtures.coco_2017(tmp_path)
    dataset = CocoInstances(tmp_path / 'val2017', tmp_path / 'annotations/instances_val2017.json', with_masks=True)
    assert len(dataset) == 3
    image, target = dataset[0]  # image 139
    assert image.shape == (3, 48, 64) and image.dtype == torch.uint8
    torch.testing.assert_close(target['boxes'], torch.tensor([[5.0, 10.0, 25.0, 30.0], [30.0, 5.0, 40.0, 35.0]]))
    assert target['labels'].tolist() == [1, 2]  # category ids 3, 18 -> labels 1, 2
    coco = COCO(str(tmp_path / 'annotations/instances_val2017.json'))
    for mask, ann in zip(target['masks'], coco.loadAnns(coco.getAnnIds(imgIds=139))):
        np.testing.assert_array_equal(mask.numpy(), coco.annToMask(ann))
    _, crowd_image = dataset[1]
    assert crowd_image['iscrowd'].tolist() == [0]  # the crowd region is not a training target
    _, empty = dataset[2]
    assert empty['boxes'].shape == (0, 4) and empty['labels'].shape == (0,)  # no annotations: a valid sample


def test_category_map_round_trip():
    categories = CategoryMap([{'id': 90, 'name': 'toothbrush'}, {'id': 1, 'name': 'person'}, {'id': 44, 'name': 'bottle'}])
    assert categories.ids == [1, 44, 90] and categories.num_classes == 4
    for category_id in (1, 44, 90):
        assert categories.category_id(categories.label(category_id)) == category_id
    assert categories.category_ids(torch.tensor([3, 1, 2])).tolist() == [90, 1, 44]
    with pytest.raises(KeyError):
        categories.category_id(0)  # background has no COCO id


def test_coco_semantic_ignores_crowd(tmp_path):
    fixtures.coco_2017(tmp_path)
    dataset = CocoSemantic(tmp_path / 'val2017', tmp_path / 'annotations/instances_val2017.json')
    image, labels = dataset[1]  # image 285: crowd rows 0..9, a car at x 10..30, y 15..35
    assert labels.shape == image.shape[1:]
    assert (labels[:10] == 255).all()
    assert (labels[16:34, 11:29] == 1).all() and labels[36:, :].eq(0).all()


def test_coco_captions(tmp_path):
    fixtures.coco_2017(tmp_path)
    dataset = CocoCaptions(tmp_path / 'val2017', tmp_path / 'annotations/captions_val2017.json')
    item = dataset[0]
    assert isinstance(item, CaptionRecord) and item.images == [item.image]
    assert item.image_id == 139 and item.captions == ['photo 0 of 139', 'photo 1 of 139']


def test_vqa_v2(tmp_path):
    fixtures.vqa_v2(tmp_path)
    dataset = VqaV2(tmp_path / 'val2014', tmp_path / 'v2_OpenEnded_mscoco_val2014_questions.json',
                    tmp_path / 'v2_mscoco_val2014_annotations.json', image_filename='COCO_val2014_{image_id:012d}.jpg')
    item = dataset[1]
    assert isinstance(item, VqaRecord) and len(item.questions) == 1
    question = item.questions[0]
    assert question.question_id == 73000 and question.answer == '2' and len(question.answers) == 10
    assert item.image.shape == (3, 24, 32) and item.image_id == question.image_id


def test_imagenet_datamodule(tmp_path):
    fixtures.imagenet(tmp_path)
    dm = ClassificationDataModule(root=str(tmp_path), image_size=32, batch_size=2, num_workers=0)
    assert dm.classes == ['n01440764', 'n01443537'] and dm.num_classes == 2
    dm.setup('fit')
    batch = next(iter(dm.train_dataloader()))
    assert batch['images'].shape == (2, 3, 32, 32) and batch['images'].dtype == torch.float32
    val = next(iter(dm.val_dataloader()))
    assert val['labels'].tolist() == [0, 0]  # unshuffled: the first class's two images


def test_coco_datamodule_batches_images_of_different_sizes(tmp_path):
    fixtures.coco_2017(tmp_path, split='val')
    fixtures.coco_2017(tmp_path, split='train')
    dm = CocoDataModule(root=str(tmp_path), image_size=64, batch_size=3, num_workers=0, with_masks=True)
    assert dm.num_classes == 3
    dm.setup('fit')
    batch = next(iter(dm.val_dataloader()))
    assert [tuple(image.shape[1:]) for image in batch['images']] == [(48, 64), (40, 40), (30, 50)]
    assert batch['images'][0].dtype == torch.float32 and batch['images'][0].max() <= 1.0
    train = next(iter(dm.train_dataloader()))
    for image, target in zip(train['images'], train['targets']):
        assert target['masks'].shape[1:] == image.shape[1:]
        assert len(target['boxes']) == len(target['labels']) == len(target['masks']) == len(target['iscrowd'])


def test_ade20k_datamodule(tmp_path):
    fixtures.ade20k(tmp_path)
    dm = SegmentationDataModule(root=str(tmp_path), num_classes=4, crop_size=24, batch_size=2, num_workers=0)
    dm.setup('fit')
    train = next(iter(dm.train_dataloader()))
    assert train['images'].shape == (2, 3, 24, 24) and train['masks'].shape == (2, 24, 24)
    assert set(train['masks'].unique().tolist()) <= {0, 1, 2, 3, 255}
    val = next(iter(dm.val_dataloader()))
    assert val['masks'].shape == (2, 28, 36)


def test_missing_data_root_is_named(tmp_path):
    dm = ClassificationDataModule(root=str(tmp_path / 'imagenet'), num_workers=0)
    with pytest.raises(ValueError, match='imagenet.*data root not found'):
        dm.num_classes


def test_vision_language_datamodule_on_shapes(tmp_path):
    from vlm.data import VisionLanguageDataModule
    dm = VisionLanguageDataModule(
        root=str(tmp_path / 'shapes'), shapes_root=str(tmp_path / 'shapes'),
        shapes_options=dict(train_images=6, val_images=3, image_size=64, classification_images_per_class=0,
                            classification_val_images_per_class=0, workers=1),
        train_images='images/train', val_images='images/val', train_captions='annotations/captions_train.json',
        val_captions='annotations/captions_val.json',
        train_questions='annotations/v2_OpenEnded_shapes_train_questions.json',
        val_questions='annotations/v2_OpenEnded_shapes_val_questions.json',
        train_answers='annotations/v2_shapes_train_annotations.json',
        val_answers='annotations/v2_shapes_val_annotations.json', vqa_image_filename='{image_id:012d}.png',
        batch_size=4, num_workers=0)
    dm.prepare_data()  # generates the shapes dataset: it did not exist
    assert (tmp_path / 'shapes' / 'shapes_meta.json').is_file()
    dm.setup('fit')
    assert len(dm.datasets['train']) == 6 + 6 * 5  # 6 caption items + 5 questions per image
    batch = next(iter(dm.val_dataloader()))  # 3 caption records, then the first VQA record
    # the records as they are, images uint8: the model's processor resizes and normalises them in the collator
    records = batch['items']
    assert [type(r) for r in records] == [CaptionRecord] * 3 + [VqaRecord]
    assert all(r.image.shape == (3, 64, 64) and r.image.dtype == torch.uint8 for r in records)
    assert all(len(r.captions) >= 3 for r in records[:3]) and records[3].questions[0].question.endswith('?')
    vqa_item = dm.datasets['train'][6]
    assert vqa_item.questions[0].question.endswith('?') and len(vqa_item.questions[0].answers) == 10


def test_vqa_v2_grouped_by_image_holds_every_question_of_the_image(tmp_path):
    fixtures.vqa_v2(tmp_path)
    args = (tmp_path / 'val2014', tmp_path / 'v2_OpenEnded_mscoco_val2014_questions.json',
            tmp_path / 'v2_mscoco_val2014_annotations.json', 'COCO_val2014_{image_id:012d}.jpg')
    single, grouped = VqaV2(*args), VqaV2(*args, group_by_image=True)
    image_ids = list(dict.fromkeys(q['image_id'] for q in single.questions))
    assert len(grouped) == len(image_ids) < len(single)
    records = [grouped[i] for i in range(len(grouped))]
    assert [r.image_id for r in records] == image_ids
    flat = [qa for r in records for qa in r.questions]
    assert sorted(qa.question_id for qa in flat) == sorted(q['question_id'] for q in single.questions)
    for qa in flat:
        i = next(k for k, q in enumerate(single.questions) if q['question_id'] == qa.question_id)
        expected = single[i]
        assert expected.questions == [qa]
        assert torch.equal(expected.image, next(r.image for r in records if r.image_id == qa.image_id))
