"""SemanticSegmenter: mIoU and pixel accuracy against hand-computed values, ignored pixels, sliding-window
inference at any size, layer decay and the poly schedule, bad label maps, a tiny model that overfits four
shapes images, and a `vlm fit` / `test` / `predict` round trip through the entry point."""
import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image
from torch.utils.data import ConcatDataset, DataLoader

from tests.data import fixtures
from vlm.callbacks.prediction_writer import PredictionWriter
from vlm.cli import main as vlm_main
from vlm.data import CocoSemantic, DataError, SegmentationDataModule, SegmentationFolder, SkippedSample
from vlm.data.collate import collate_segmentation
from vlm.data.shapes import generate_shapes
from vlm.models import slide_inference, window_starts
from vlm.tasks import SemanticSegmenter
from vlm.tasks.optimization import create_scheduler

REPO = Path(__file__).resolve().parents[2]
ENCODER_KWARGS = dict(patch_size=8, img_size=64, depth=2, embed_dim=64, num_heads=2)
TINY = dict(encoder='vlm_vit_tiny_patch16_rope_rms', encoder_kwargs=ENCODER_KWARGS, pyramid_channels=32,
            head_channels=32)
SHAPES_CLASSES = ['background', 'circle', 'cross', 'ring', 'square', 'star', 'triangle']


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models gain nothing from a second intra-op thread, and a step takes 10x longer with two when another
    process keeps the second of the 2 CI cores busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def shapes(tmp_path_factory) -> Path:
    """8 train / 4 val shapes images of 64 px with their label maps (segmentation/{train,val}/*.png)."""
    return generate_shapes(tmp_path_factory.mktemp('data') / 'shapes', train_images=8, val_images=4, image_size=64,
                           classification_images_per_class=0, classification_val_images_per_class=0, workers=1)


def _shapes_datamodule(shapes: Path, **kwargs) -> SegmentationDataModule:
    options = dict(train_images='images/train', val_images='images/val', train_labels='segmentation/train',
                   val_labels='segmentation/val', class_names=SHAPES_CLASSES, crop_size=64, batch_size=4,
                   num_workers=0)
    return SegmentationDataModule(root=str(shapes), **{**options, **kwargs})


def _trainer(tmp_path: Path, **kwargs) -> L.Trainer:
    options = dict(accelerator='cpu', max_steps=2, num_sanity_val_steps=0, default_root_dir=tmp_path, logger=False,
                   enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    return L.Trainer(**{**options, **kwargs})


def _batches(*batches):
    """A dataloader yielding the given batches as they are."""
    return DataLoader(list(batches), batch_size=None, collate_fn=lambda batch: batch)


# -- metrics ---------------------------------------------------------------------------------------------------

TARGET = torch.tensor([[0, 0, 1, 1],
                       [2, 2, 255, 1]])
PREDICTION = torch.tensor([[0, 1, 1, 1],
                           [2, 0, 0, 1]])


def _validate_with_predictions(tmp_path, capsys, prediction: torch.Tensor, target: torch.Tensor, num_classes=4):
    """Run trainer.validate on one batch whose logits are fixed: one-hot of `prediction`."""
    model = SemanticSegmenter(num_classes=num_classes, class_names=[f'class{i}' for i in range(num_classes)], **TINY)
    logits = F.one_hot(prediction, num_classes).permute(2, 0, 1)[None].float() * 10  # (1, K, H, W)
    model.infer = lambda images: logits
    batch = {'images': torch.zeros(1, 3, *target.shape), 'masks': target[None], 'skipped': {}}
    metrics = _trainer(tmp_path).validate(model, dataloaders=_batches(batch), verbose=False)[0]
    return metrics, capsys.readouterr().out


def test_miou_and_pixel_accuracy_match_a_hand_computed_case(tmp_path, capsys):
    metrics, printed = _validate_with_predictions(tmp_path, capsys, PREDICTION, TARGET)
    # class 0: tp 1, fp 1 (a 2 predicted 0; the ignored pixel predicted 0 does not count), fn 1 -> 1/3
    # class 1: tp 3, fp 1, fn 0 -> 3/4; class 2: tp 1, fp 0, fn 1 -> 1/2; class 3: in neither -> not averaged
    assert metrics['val/mIoU'] == pytest.approx((1 / 3 + 3 / 4 + 1 / 2) / 3)
    assert metrics['val/pixel_acc'] == pytest.approx(5 / 7)  # 7 labelled pixels, 5 right
    assert 'mIoU 0.5278' in printed
    assert [line.split() for line in printed.splitlines() if line.strip().startswith('class')] == [
        ['class', 'IoU'], ['class0', '0.3333'], ['class1', '0.7500'], ['class2', '0.5000'], ['class3', '-']]


def test_ignored_pixels_change_nothing(tmp_path, capsys):
    reference, _ = _validate_with_predictions(tmp_path, capsys, PREDICTION, TARGET)
    for value in (1, 2, 3):  # whatever is predicted where the label is ignored
        prediction = PREDICTION.clone()
        prediction[1, 2] = value
        metrics, _ = _validate_with_predictions(tmp_path, capsys, prediction, TARGET)
        assert metrics == pytest.approx(reference)
    # the loss and its gradient ignore those pixels too
    model = SemanticSegmenter(num_classes=4, **TINY)
    logits = torch.randn(1, 4, 2, 4, requires_grad=True)
    loss, count = model._loss(logits, TARGET[None])
    assert count == 7
    keep = TARGET != 255
    expected = F.cross_entropy(logits.permute(0, 2, 3, 1)[0][keep], TARGET[keep], reduction='sum')
    assert loss.item() == pytest.approx(expected.item())
    loss.backward()
    assert logits.grad[0, :, 1, 2].abs().sum() == 0 and logits.grad[0, :, keep].abs().sum() > 0
    # a batch labelled nowhere gives a zero loss, not NaN
    batch = {'images': torch.randn(1, 3, 64, 64), 'masks': torch.full((1, 64, 64), 255), 'skipped': {}}
    assert model.training_step(batch, 0).item() == 0.0


# -- sliding window --------------------------------------------------------------------------------------------

@pytest.mark.parametrize('size', [(5, 7), (16, 16), (37, 50), (33, 16), (16, 70)])
def test_sliding_window_covers_every_pixel_and_keeps_the_size(size):
    window, stride = 16, 12
    images = torch.randn(2, 3, *size)
    calls = []

    def ones(crop):
        calls.append(crop.shape)
        return torch.ones(crop.shape[0], 5, *crop.shape[-2:])

    out = slide_inference(ones, images, num_classes=5, window=window, stride=stride)
    assert out.shape == (2, 5, *size)
    assert torch.equal(out, torch.ones_like(out))  # an uncovered pixel would be 0 / 0 = NaN
    assert all(shape[-2:] == (window, window) for shape in calls)  # smaller images are padded up to the window

    pointwise = torch.nn.Conv2d(3, 5, kernel_size=1)  # a per-pixel function: sliding = whole image
    with torch.no_grad():
        assert torch.allclose(slide_inference(pointwise, images, 5, window, stride), pointwise(images), atol=1e-6)


def test_sliding_window_averages_overlapping_windows():
    calls = []

    def window_number(crop):  # every logit of the k-th window is k
        calls.append(len(calls) + 1)
        return torch.full((1, 1, *crop.shape[-2:]), float(calls[-1]))

    out = slide_inference(window_number, torch.zeros(1, 3, 1, 10), num_classes=1, window=4, stride=3)
    # windows at columns 0-3, 3-6 and 6-9 (the last aligned with the right edge); columns 3 and 6 are shared
    assert out[0, 0, 0].tolist() == [1, 1, 1, 1.5, 2, 2, 2.5, 3, 3, 3]
    assert window_starts(10, 4, 3) == [0, 3, 6] and window_starts(11, 4, 3) == [0, 3, 6, 7]
    assert window_starts(3, 4, 3) == [0]
    with pytest.raises(ValueError, match='uncovered'):
        window_starts(20, 4, 5)


def test_the_model_returns_the_input_size_whole_and_sliding():
    model = SemanticSegmenter(num_classes=3, **TINY).eval()
    for inference in ('whole', 'slide'):
        model.model.set_inference(inference, window=32, stride=24)
        for size in ((64, 64), (20, 45), (71, 33)):
            with torch.no_grad():
                assert model.infer(torch.randn(2, 3, *size)).shape == (2, 3, *size)
    with pytest.raises(ValueError, match='inference'):
        SemanticSegmenter(num_classes=3, inference='tiles', **TINY)


# -- optimisation ----------------------------------------------------------------------------------------------

def test_layer_decay_scales_the_encoder_only_and_poly_schedule(shapes, tmp_path):
    model = SemanticSegmenter(num_classes=7, **TINY,
                              optimization=dict(layer_decay=0.5, lr=1e-2, min_lr=1e-2, warmup_epochs=0))
    trainer = _trainer(tmp_path, max_steps=1, limit_val_batches=0)
    trainer.fit(model, datamodule=_shapes_datamodule(shapes))
    names = {id(p): n for n, p in model.named_parameters()}
    groups = trainer.optimizers[0].param_groups
    scale = {names[id(p)]: group['lr_scale'] for group in groups for p in group['params']}
    encoder = 'model.backbone.encoder.'
    # depth 2: stem 0.5^3, block 0 0.5^2, block 1 and the final norm 0.5^1 (timm's grouping), the rest 1.0
    assert scale[encoder + 'patch_embed.proj.weight'] == 0.125
    assert scale[encoder + 'blocks.0.attn.qkv.weight'] == 0.25
    assert scale[encoder + 'blocks.1.mlp.fc2.weight'] == scale[encoder + 'norm.weight'] == 0.5
    others = [name for name in scale if not name.startswith(encoder)]
    assert any(name.startswith('model.backbone.pyramid') for name in others)
    assert 'model.head.classifier.weight' in others
    assert all(scale[name] == 1.0 for name in others)
    for group in groups:  # flat schedule (min_lr == lr): lr is lr * lr_scale
        assert group['lr'] == pytest.approx(1e-2 * group['lr_scale'])

    poly = SemanticSegmenter(num_classes=7, **TINY, optimization=dict(schedule='poly', poly_power=1.0, lr=1e-2,
                                                                      min_lr=0.0))
    optimizer = torch.optim.SGD(poly.parameters(), lr=1e-2)
    scheduler = create_scheduler(optimizer, poly.optimization, total_steps=100, warmup_steps=10)
    scheduler.step_update(num_updates=55)
    assert optimizer.param_groups[0]['lr'] == pytest.approx(1e-2 * (1 - 55 / 100))  # linear decay to 0
    scheduler.step_update(num_updates=5)
    assert optimizer.param_groups[0]['lr'] == pytest.approx(1e-5 + (1e-2 - 1e-5) * 5 / 10)  # linear warmup from lr/1000


# -- bad input -------------------------------------------------------------------------------------------------

def _ade(tmp_path: Path) -> Path:
    fixtures.ade20k(tmp_path, num_classes=4)  # images 36x28, label maps 0..3
    return tmp_path / 'annotations' / 'training'


def _save_labels(path: Path, labels: np.ndarray, mode: str = 'L') -> None:
    image = Image.fromarray(labels) if mode == 'I;16' else Image.fromarray(labels, mode=mode)  # uint16: I;16
    assert image.mode == mode
    image.save(path)


def test_label_map_of_another_size_is_named(tmp_path):
    labels = _ade(tmp_path)
    _save_labels(labels / 'ADE_training_00000001.png', np.zeros((36, 28), np.uint8))  # transposed
    dataset = SegmentationFolder(tmp_path / 'images/training', labels, num_classes=4)
    assert dataset[0][1].shape == (28, 36)
    with pytest.raises(DataError, match=r"ADE_training_00000001.png, field 'size': label map is 28x36 but its "
                                        r"image is 36x28"):
        dataset[1]


@pytest.mark.parametrize('value, mode, reduce_zero_label, message', [
    (4, 'L', False, r"values \[4\] are outside the classes 0..3 \(ignore value 255\)"),
    (254, 'L', False, r"values \[254\]"),
    (5, 'L', True, r"values \[5\] are outside the classes 1..4 \(reduce_zero_label"),  # the value in the file
    (300, 'I;16', False, r"values \[300\]"),  # a 16-bit label map
])
def test_label_values_outside_the_classes_are_named(tmp_path, value, mode, reduce_zero_label, message):
    labels = _ade(tmp_path)
    bad = np.ones((28, 36), np.uint16 if mode == 'I;16' else np.uint8)
    bad[3, 4] = value
    _save_labels(labels / 'ADE_training_00000000.png', bad, mode)
    dataset = SegmentationFolder(tmp_path / 'images/training', labels, num_classes=4,
                                 reduce_zero_label=reduce_zero_label)
    with pytest.raises(DataError, match=f"ADE_training_00000000.png, field 'label values': {message}"):
        dataset[0]


def test_valid_values_with_reduce_zero_label(tmp_path):
    labels = _ade(tmp_path)
    _save_labels(labels / 'ADE_training_00000000.png', np.array([[0, 1, 4, 255]] * 28, np.uint8).repeat(9, 1))
    dataset = SegmentationFolder(tmp_path / 'images/training', labels, num_classes=4, reduce_zero_label=True)
    assert dataset[0][1][0, ::9].tolist() == [255, 0, 3, 255]  # 0 'other' and 255 ignored, 1..4 -> 0..3


def test_rgb_label_map_and_missing_label_map_are_named(tmp_path):
    labels = _ade(tmp_path)
    _save_labels(labels / 'ADE_training_00000000.png', np.zeros((28, 36, 3), np.uint8), 'RGB')
    with pytest.raises(DataError, match="ADE_training_00000000.png, field 'mode'"):
        SegmentationFolder(tmp_path / 'images/training', labels, num_classes=4)[0]
    (labels / 'ADE_training_00000001.png').unlink()
    with pytest.raises(DataError, match='ADE_training_00000001.jpg.*no label map'):
        SegmentationFolder(tmp_path / 'images/training', labels, num_classes=4)


def test_bad_label_maps_are_skipped_and_counted_when_asked(tmp_path):
    labels = _ade(tmp_path)
    _save_labels(labels / 'ADE_training_00000000.png', np.full((28, 36), 9, np.uint8))
    dataset = SegmentationFolder(tmp_path / 'images/training', labels, num_classes=4, skip_bad_samples=True)
    assert isinstance(dataset[0], SkippedSample)
    batch = collate_segmentation([dataset[0], dataset[1]])
    assert batch['images'].shape == (1, 3, 28, 36) and batch['skipped'] == {'label values': 1}


def test_bad_label_map_through_the_cli_is_one_clear_message(tmp_path, capsys):
    fixtures.ade20k(tmp_path / 'ade', num_classes=4)
    _save_labels(tmp_path / 'ade/annotations/training/ADE_training_00000001.png', np.full((28, 36), 7, np.uint8))
    config = _cli_config(tmp_path, {'data': {'init_args': {
        'root': str(tmp_path / 'ade'), 'shapes_root': None, 'train_images': 'images/training',
        'val_images': 'images/validation', 'train_labels': 'annotations/training',
        'val_labels': 'annotations/validation', 'num_classes': 4, 'class_names': None, 'crop_size': 32,
        'batch_size': 2, 'num_workers': 0}}})
    assert vlm_main(['fit', '--config', str(REPO / 'configs/shapes/segmentation.yaml'), '--config', str(config),
                     '--trainer.max_steps', '2']) == 1
    err = capsys.readouterr().err
    assert "ADE_training_00000001.png, field 'label values': values [7]" in err and 'Traceback' not in err


# -- training ----------------------------------------------------------------------------------------------------

def test_tiny_model_overfits_four_shapes_images(shapes, tmp_path):
    steps = 120
    datamodule = _shapes_datamodule(shapes)
    datamodule.setup('validate')  # the 4 val images, unaugmented
    images = datamodule.datasets['val']
    repeated = DataLoader(ConcatDataset([images] * steps), batch_size=4, collate_fn=collate_segmentation)
    # logits at stride 2 (pyramid strides 2..16): the 8-24 px shapes of 64 px images have thin parts (star tips)
    model = SemanticSegmenter(num_classes=7, class_names=SHAPES_CLASSES, dropout=0.0, pyramid_strides=(2, 4, 8, 16),
                              **{**TINY, 'encoder_kwargs': {**ENCODER_KWARGS, 'embed_dim': 96, 'num_heads': 3}},
                              optimization=dict(lr=1e-2, weight_decay=0.0, warmup_epochs=10 / steps, min_lr=1e-4))
    trainer = _trainer(tmp_path, max_steps=-1, max_epochs=1)  # one epoch of `steps` steps on the same 4 images
    trainer.fit(model, train_dataloaders=repeated, val_dataloaders=datamodule.val_dataloader())
    assert float(trainer.callback_metrics['val/mIoU']) >= 0.9
    assert float(trainer.callback_metrics['val/pixel_acc']) >= 0.97


def _cli_config(tmp_path: Path, extra: dict) -> Path:
    """A config laid over configs/shapes/segmentation.yaml: tiny model, tiny data, logs under tmp_path."""
    override = {
        'trainer': {'enable_progress_bar': False, 'enable_model_summary': False, 'precision': '32-true',
                    'max_epochs': 1, 'log_every_n_steps': 1,
                    'logger': {'class_path': 'lightning.pytorch.loggers.CSVLogger',
                               'init_args': {'save_dir': str(tmp_path / 'runs'), 'name': 'seg'}}},
        'model': {'init_args': {k: v for k, v in TINY.items() if k != 'encoder'}},
        **extra,
    }
    path = tmp_path / 'tiny.yaml'
    path.write_text(yaml.safe_dump(override))
    return path


def test_fit_test_predict_round_trip_through_the_cli(shapes, tmp_path, capsys):
    tiny = _cli_config(tmp_path, {'data': {'init_args': {
        'root': str(shapes), 'shapes_root': str(shapes), 'crop_size': 64, 'batch_size': 4, 'eval_batch_size': 3,
        'num_workers': 0}}})
    config = str(REPO / 'configs' / 'shapes' / 'segmentation.yaml')
    assert vlm_main(['fit', '--config', config, '--config', str(tiny)]) == 0  # 8 images: 2 steps, validation
    run = tmp_path / 'runs' / 'seg' / 'version_0'
    hparams = yaml.safe_load((run / 'hparams.yaml').read_text())
    assert hparams['num_classes'] == 7 and hparams['class_names'] == SHAPES_CLASSES  # linked from the data
    header = (run / 'metrics.csv').read_text().splitlines()[0].split(',')
    assert {'val/mIoU', 'val/pixel_acc', 'val/loss', 'train/loss'} <= set(header)
    assert any(name.startswith('best-epoch') for name in (p.name for p in (run / 'checkpoints').iterdir()))
    printed = capsys.readouterr().out
    assert 'val epoch 0: mIoU' in printed and all(f'  {name}' in printed for name in SHAPES_CLASSES)

    last = str(run / 'checkpoints' / 'last.ckpt')
    assert vlm_main(['test', '--config', config, '--config', str(tiny), '--ckpt_path', last]) == 0
    assert 'test/mIoU' in (tmp_path / 'runs' / 'seg' / 'version_1' / 'metrics.csv').read_text()
    assert vlm_main(['predict', '--config', config, '--config', str(tiny), '--ckpt_path', last,
                     '--model.init_args.inference', 'slide', '--model.init_args.window', '48',
                     '--model.init_args.stride', '40']) == 0
    out = tmp_path / 'runs' / 'seg' / 'version_2' / 'predictions'
    stems = sorted(p.stem for p in (shapes / 'images' / 'val').iterdir())
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f'{stem}_{kind}.png' for stem in stems for kind in ('mask', 'overlay'))
    for stem in stems:
        with Image.open(out / f'{stem}_mask.png') as mask, Image.open(out / f'{stem}_overlay.png') as overlay:
            assert mask.mode == 'P' and mask.size == (64, 64) and np.asarray(mask).max() < 7
            assert mask.getpalette()[:3] == [0, 0, 0]  # background drawn black
            assert overlay.mode == 'RGB' and overlay.size == (64, 64)


def test_command_line_settings_beat_the_checkpoints_and_shape_changes_are_refused(shapes, tmp_path, capsys):
    """The README's example: `vlm validate ... --ckpt_path ... --model.init_args.inference slide ...` validates with
    the sliding window although the checkpoint stored `inference: whole`; an override that changes the weights'
    shapes is refused with one message that names it."""
    tiny = _cli_config(tmp_path, {'data': {'init_args': {
        'root': str(shapes), 'shapes_root': str(shapes), 'crop_size': 64, 'batch_size': 4, 'num_workers': 2}}})
    config = str(REPO / 'configs' / 'shapes' / 'segmentation.yaml')
    assert vlm_main(['fit', '--config', config, '--config', str(tiny), '--trainer.limit_val_batches', '0']) == 0
    last = str(tmp_path / 'runs' / 'seg' / 'version_0' / 'checkpoints' / 'last.ckpt')
    capsys.readouterr()
    assert vlm_main(['validate', '--config', config, '--config', str(tiny), '--ckpt_path', last,
                     '--model.init_args.inference', 'slide', '--model.init_args.window', '48',
                     '--model.init_args.stride', '32']) == 0
    err = capsys.readouterr().err
    assert "the command overrides the checkpoint's inference: 'whole' -> 'slide'" in err
    used = yaml.safe_load((tmp_path / 'runs' / 'seg' / 'version_1' / 'config.yaml').read_text())['model']['init_args']
    assert (used['inference'], used['window'], used['stride']) == ('slide', 48, 32)
    wider = json.dumps({**TINY['encoder_kwargs'], 'embed_dim': 96, 'num_heads': 3})
    assert vlm_main(['validate', '--config', config, '--config', str(tiny), '--ckpt_path', last,
                     '--model.init_args.encoder_kwargs', wider]) == 1
    err = capsys.readouterr().err
    assert 'vlm validate: error: checkpoint does not fit this model' in err and 'Traceback' not in err
    assert 'overridden on the command line: encoder_kwargs' in err


def test_predict_writes_images_of_any_size(tmp_path):
    fixtures.ade20k(tmp_path, num_classes=4)  # 36x28 images: smaller than the window, not multiples of anything
    datamodule = SegmentationDataModule(root=str(tmp_path), num_classes=4, crop_size=32, batch_size=2,
                                        num_workers=0)
    model = SemanticSegmenter(num_classes=4, inference='slide', window=32, stride=20, **TINY)
    trainer = _trainer(tmp_path, callbacks=[PredictionWriter(str(tmp_path / 'out'))])
    trainer.predict(model, datamodule=datamodule)
    for k in range(2):
        with Image.open(tmp_path / 'out' / f'ADE_validation_{k:08d}_mask.png') as mask:
            assert mask.size == (36, 28)
        with Image.open(tmp_path / 'out' / f'ADE_validation_{k:08d}_overlay.png') as overlay:
            assert overlay.size == (36, 28)
            source = np.asarray(Image.open(tmp_path / 'images' / 'validation' / f'ADE_validation_{k:08d}.jpg'))
            assert np.abs(np.asarray(overlay).astype(int) - source).mean() > 1  # the classes are blended in


def test_prediction_items_carry_the_image_names(tmp_path):
    fixtures.coco_2017(tmp_path)  # COCO instances as semantic maps: names from the JSON's file_name
    coco = CocoSemantic(tmp_path / 'val2017', tmp_path / 'annotations/instances_val2017.json', return_names=True)
    batch = collate_segmentation([coco[0], coco[1]])  # 64x48 and 40x40: kept as lists
    assert batch['names'] == ['000000000139', '000000000285'] and isinstance(batch['images'], list)
    assert len(CocoSemantic(tmp_path / 'val2017', tmp_path / 'annotations/instances_val2017.json')[0]) == 2
