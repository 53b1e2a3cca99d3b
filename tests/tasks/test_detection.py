"""ObjectDetector (FCOS, RetinaNet, Mask R-CNN on the ViTDet backbone): losses, COCO evaluation with the dataset's
category ids, layer-decay groups, prediction files, the CLI, and a tiny FCOS that overfits four images."""
import json
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.loggers import CSVLogger
from PIL import Image
from torchvision import tv_tensors

from vlm.callbacks.prediction_writer import PredictionWriter
from vlm.cli import main as vlm_main
from vlm.data import CocoDataModule
from vlm.data.shapes import generate_shapes
from vlm.evaluation import STAT_NAMES
from vlm.models import ViTDetBackbone
from vlm.tasks import ImageClassifier, ObjectDetector

REPO = Path(__file__).resolve().parents[2]
ENCODER_KWARGS = dict(patch_size=8, img_size=64, depth=2, embed_dim=64, num_heads=2)
TINY = dict(encoder='vlm_vit_tiny_patch16_rope_rms', encoder_kwargs=ENCODER_KWARGS, pyramid_channels=32,
            min_size=64, max_size=64)
DETECTORS = ('fcos', 'retinanet', 'maskrcnn')
EMPTY_TRAIN_IMAGE = 1  # the fixture removes this image's annotations: a training image without objects


@pytest.fixture(scope='module')
def shapes(tmp_path_factory) -> Path:
    """8 train / 4 val shapes images of 64 px (category ids 1, 3, 7, 12, 18, 25); train image 1 has no objects."""
    root = generate_shapes(tmp_path_factory.mktemp('data') / 'shapes', train_images=8, val_images=4, image_size=64,
                           classification_images_per_class=0, classification_val_images_per_class=0, workers=1)
    train = root / 'annotations' / 'instances_train.json'
    data = json.loads(train.read_text())
    data['annotations'] = [a for a in data['annotations'] if a['image_id'] != EMPTY_TRAIN_IMAGE]
    train.write_text(json.dumps(data))
    return root


def _datamodule(shapes: Path, with_masks: bool = False, **kwargs) -> CocoDataModule:
    paths = dict(train_images='images/train', val_images='images/val', train_annotations='annotations/instances_train.json',
                 val_annotations='annotations/instances_val.json')
    options = dict(image_size=64, batch_size=4, num_workers=0)
    return CocoDataModule(root=str(shapes), with_masks=with_masks, **{**paths, **options, **kwargs})


def _model(detector: str, datamodule: CocoDataModule, **kwargs) -> ObjectDetector:
    return ObjectDetector(num_classes=datamodule.num_classes, class_names=datamodule.class_names, detector=detector,
                          **{**TINY, **kwargs})


def _trainer(tmp_path: Path, **kwargs) -> L.Trainer:
    options = dict(accelerator='cpu', max_steps=2, limit_val_batches=2, num_sanity_val_steps=0,
                   default_root_dir=tmp_path, logger=CSVLogger(tmp_path), enable_progress_bar=False,
                   enable_model_summary=False, log_every_n_steps=1)
    return L.Trainer(**{**options, **kwargs})


def _dataset_category_ids(shapes: Path) -> set:
    return {c['id'] for c in json.loads((shapes / 'annotations' / 'instances_val.json').read_text())['categories']}


@pytest.mark.parametrize('detector', DETECTORS)
def test_training_step_loss_is_finite_with_an_image_without_objects(shapes, detector):
    datamodule = _datamodule(shapes, with_masks=detector == 'maskrcnn')
    datamodule.setup('fit')
    batch = next(iter(datamodule.train_dataloader()))
    empty = {'boxes': tv_tensors.BoundingBoxes(torch.zeros(0, 4), format='XYXY', canvas_size=(48, 80)),
             'labels': torch.zeros(0, dtype=torch.int64), 'image_id': 0}
    if detector == 'maskrcnn':
        empty['masks'] = tv_tensors.Mask(torch.zeros(0, 48, 80, dtype=torch.uint8))
    batch['images'].append(torch.rand(3, 48, 80))  # another size in the same batch, and no objects
    batch['targets'].append(empty)
    model = _model(detector, datamodule)
    loss = model.training_step(batch, 0)
    assert torch.isfinite(loss)
    loss.backward()
    grad = model.model.backbone.encoder.blocks[0].attn.qkv.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert model.training_step({'images': [], 'targets': [], 'skipped': {}}, 1) is None  # all samples skipped


@pytest.mark.parametrize('detector', DETECTORS)
def test_fit_evaluates_coco_map_with_the_dataset_ids_and_predicts_files(shapes, tmp_path, detector):
    masks = detector == 'maskrcnn'
    datamodule = _datamodule(shapes, with_masks=masks)
    model = _model(detector, datamodule, score_thresh=0.0, draw_score_thresh=0.0)
    trainer = _trainer(tmp_path, callbacks=[PredictionWriter()])
    trainer.fit(model, datamodule=datamodule)  # 8 train images: 2 steps (one without objects), then validation

    run = Path(trainer.log_dir)
    logged = (run / 'metrics.csv').read_text().splitlines()[0].split(',')
    expected = [f'val/{name}' for name in STAT_NAMES] + ([f'val/segm_{name}' for name in STAT_NAMES] if masks else [])
    assert set(expected) <= set(logged)
    assert f"train/{'loss_mask' if masks else 'classification'}" in logged
    results = json.loads((run / 'coco_results_val_epoch000.json').read_text())
    val_ids = {image['id'] for image in json.loads((shapes / 'annotations/instances_val.json').read_text())['images']}
    assert {r['image_id'] for r in results} == val_ids
    category_ids = {r['category_id'] for r in results}
    assert category_ids <= _dataset_category_ids(shapes) and category_ids - set(range(1, 7))  # ids, not labels
    assert all(('segmentation' in r) == masks for r in results)
    assert 'val/AP' in trainer.callback_metrics and 0.0 <= float(trainer.callback_metrics['val/AP']) <= 1.0

    trainer.predict(model, datamodule=datamodule)
    out = run / 'predictions'
    predicted = json.loads((out / 'coco_results.json').read_text())
    assert predicted and {r['image_id'] for r in predicted} == val_ids
    assert {r['category_id'] for r in predicted} <= _dataset_category_ids(shapes)
    for image_id in val_ids:
        with Image.open(out / f'{image_id:012d}.png') as image:
            assert image.size == (64, 64) and image.mode == 'RGB'


def test_layer_decay_scales_the_encoder_blocks_only(shapes, tmp_path):
    datamodule = _datamodule(shapes)
    model = _model('fcos', datamodule, optimization=dict(layer_decay=0.5, lr=1e-2, min_lr=1e-2, warmup_epochs=0))
    trainer = _trainer(tmp_path, max_steps=1, limit_val_batches=0)
    trainer.fit(model, datamodule=datamodule)
    names = {id(p): n for n, p in model.named_parameters()}
    scale = {names[id(p)]: group['lr_scale'] for group in trainer.optimizers[0].param_groups for p in group['params']}
    for group in trainer.optimizers[0].param_groups:  # flat schedule (min_lr == lr): lr is lr * lr_scale
        assert group['lr'] == pytest.approx(1e-2 * group['lr_scale'])
    encoder = 'model.backbone.encoder.'
    # depth 2: stem 0.5^3, block 0 0.5^2, block 1 and the final norm 0.5^1 (timm's grouping), the rest 1.0
    assert scale[encoder + 'patch_embed.proj.weight'] == 0.125
    assert scale[encoder + 'blocks.0.attn.qkv.weight'] == 0.25
    assert scale[encoder + 'blocks.1.mlp.fc2.weight'] == scale[encoder + 'norm.weight'] == 0.5
    others = [name for name in scale if not name.startswith(encoder)]
    assert any('pyramid' in name for name in others) and any('head' in name for name in others)
    assert all(scale[name] == 1.0 for name in others)
    decay = {names[id(p)]: group['weight_decay'] for group in trainer.optimizers[0].param_groups
             for p in group['params']}
    assert decay[encoder + 'cls_token'] == 0.0 and decay[encoder + 'blocks.0.attn.qkv.bias'] == 0.0
    assert decay[encoder + 'blocks.0.attn.qkv.weight'] == model.optimization.weight_decay


def test_encoder_initialised_from_a_classification_checkpoint(tmp_path):
    classifier = ImageClassifier(num_classes=6, encoder='vlm_vit_tiny_patch16_rope_rms', encoder_kwargs=ENCODER_KWARGS)
    checkpoint = tmp_path / 'classification.ckpt'
    torch.save({'state_dict': classifier.state_dict()}, checkpoint)  # keys 'model.blocks.0...', 'model.head...'
    backbone = ViTDetBackbone('vlm_vit_tiny_patch16_rope_rms', ENCODER_KWARGS, str(checkpoint), pyramid_channels=32)
    for name, tensor in backbone.encoder.state_dict().items():
        assert torch.equal(tensor, classifier.model.state_dict()[name]), name


def test_fit_through_the_cli_with_the_shapes_config(shapes, tmp_path):
    override = {
        'trainer': {'enable_progress_bar': False, 'enable_model_summary': False, 'limit_val_batches': 1,
                    'logger': {'class_path': 'lightning.pytorch.loggers.CSVLogger',
                               'init_args': {'save_dir': str(tmp_path / 'runs'), 'name': 'det'}}},
        'model': {'init_args': {'encoder_kwargs': ENCODER_KWARGS, 'pyramid_channels': 32,
                                'min_size': 64, 'max_size': 64}},
        'data': {'init_args': {'root': str(shapes), 'shapes_root': str(shapes), 'image_size': 64, 'batch_size': 4,
                               'num_workers': 0}},
    }
    tiny = tmp_path / 'tiny.yaml'
    tiny.write_text(yaml.safe_dump(override))
    config = str(REPO / 'configs' / 'shapes' / 'detection.yaml')
    assert vlm_main(['fit', '--config', config, '--config', str(tiny), '--trainer.max_steps', '2',
                     '--trainer.max_epochs', '1']) == 0
    run = tmp_path / 'runs' / 'det' / 'version_0'
    assert (run / 'checkpoints' / 'last.ckpt').is_file()
    hparams = yaml.safe_load((run / 'hparams.yaml').read_text())
    assert hparams['num_classes'] == 7 and hparams['class_names'][0] == 'background'  # linked from the data
    assert 'val/AP50' in (run / 'metrics.csv').read_text()
    last = str(run / 'checkpoints' / 'last.ckpt')
    assert vlm_main(['validate', '--config', config, '--config', str(tiny), '--ckpt_path', last]) == 0
    assert vlm_main(['test', '--config', config, '--config', str(tiny), '--ckpt_path', last]) == 0
    assert (tmp_path / 'runs' / 'det' / 'version_2' / 'coco_results_test_epoch000.json').is_file()
    assert vlm_main(['predict', '--config', config, '--config', str(tiny), '--ckpt_path', last]) == 0
    predictions = tmp_path / 'runs' / 'det' / 'version_3' / 'predictions'
    assert (predictions / 'coco_results.json').is_file() and len(list(predictions.glob('*.png'))) == 4


def test_tiny_fcos_overfits_four_images(shapes, tmp_path):
    steps = 60
    datamodule = _datamodule(shapes, train_images='images/val', train_annotations='annotations/instances_val.json',
                             scale_range=(1.0, 1.0), color_jitter=0.0)
    model = _model('fcos', datamodule, pyramid_strides=[4, 8, 16], extra_levels=0,
                   optimization=dict(lr=2e-3, weight_decay=0.0, warmup_epochs=3, min_lr=2e-4))
    trainer = _trainer(tmp_path, max_steps=-1, max_epochs=steps, check_val_every_n_epoch=steps, limit_val_batches=None,
                       enable_checkpointing=False, logger=False)
    trainer.fit(model, datamodule=datamodule)  # one step per epoch on the 4 val images, evaluated at the end
    assert float(trainer.callback_metrics['val/AP50']) > 0.5
