"""Transforms keep boxes, masks and label maps aligned with the image; real photographs pass the readers."""
import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from timm.data import IMAGENET_DEFAULT_MEAN as IMAGENET_MEAN
from timm.data import IMAGENET_DEFAULT_STD as IMAGENET_STD
from torchvision import tv_tensors

from vlm.data import ClassificationFolder, CocoInstances
from vlm.data import transforms as T
from vlm.data.transforms import IMAGENET
from vlm.encoder import encoder_normalization


def _scene(height, width, boxes):
    """An image whose pixels inside each box carry the box's index + 1 in channel 0, with matching masks."""
    image = torch.zeros(3, height, width, dtype=torch.uint8)
    masks = torch.zeros(len(boxes), height, width, dtype=torch.uint8)
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        image[0, y0:y1, x0:x1] = 40 * (k + 1)
        masks[k, y0:y1, x0:x1] = 1
    target = {
        'boxes': tv_tensors.BoundingBoxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), format='XYXY',
                                          canvas_size=(height, width)),
        'masks': tv_tensors.Mask(masks),
        'labels': torch.arange(1, len(boxes) + 1),
        'iscrowd': torch.zeros(len(boxes), dtype=torch.int64),
        'area': masks.flatten(1).sum(1).float(),
    }
    return tv_tensors.Image(image), target


@st.composite
def scenes(draw):
    height, width = draw(st.integers(32, 96)), draw(st.integers(32, 96))
    boxes = []
    for k in range(draw(st.integers(0, 3))):
        x0, y0 = draw(st.integers(0, width - 9)), draw(st.integers(0, height - 9))
        x1, y1 = draw(st.integers(x0 + 8, width)), draw(st.integers(y0 + 8, height))
        boxes.append((x0, y0, x1, y1))
    return height, width, boxes


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(scenes(), st.integers(0, 2 ** 16))
def test_detection_train_keeps_boxes_and_masks_on_their_pixels(scene, seed):
    torch.manual_seed(seed)
    image, target = _scene(*scene)
    pipeline = T.detection_train(64, scale_range=(0.5, 1.5), color_jitter=0.0)
    out_image, out = pipeline(image, target)
    assert out_image.shape[-2:] == out['masks'].shape[-2:] == tuple(out['boxes'].canvas_size)
    assert len(out['boxes']) == len(out['labels']) == len(out['masks']) == len(out['iscrowd']) == len(out['area'])
    for box, mask in zip(out['boxes'], out['masks']):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        if len(xs) == 0:
            continue
        # the mask's extent and the box agree to within a pixel of resampling
        mask_box = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
        assert torch.allclose(box, mask_box, atol=1.5), (box, mask_box)
        # the image's painted region sits under the mask (channel 0 is bright inside every box)
        assert out_image[0][mask.bool()].mean() > 0.1


@settings(max_examples=25, deadline=None, derandomize=True)
@given(st.integers(24, 80), st.integers(24, 80), st.integers(0, 2 ** 16))
def test_segmentation_train_moves_label_map_with_image(height, width, seed):
    torch.manual_seed(seed)
    labels = torch.zeros(height, width, dtype=torch.int64)
    labels[height // 4: height // 2, width // 3:] = 2
    image = torch.zeros(3, height, width, dtype=torch.uint8)
    image[0][labels == 2] = 255
    out_image, out_labels = T.segmentation_train(32, color_jitter=0.0)(tv_tensors.Image(image), tv_tensors.Mask(labels))
    assert out_image.shape == (3, 32, 32) and out_labels.shape == (32, 32)
    bright = out_image[0] > (0.5 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    inside = out_labels == 2
    # away from its border (where resampling blends), the labelled region is exactly the painted region
    erode = lambda m: (-torch.nn.functional.max_pool2d(-m[None].float(), 3, 1, 1))[0].bool()  # noqa: E731
    interior, exterior = erode(inside), erode(~inside & (out_labels != 255))
    assert bright[interior].all() and not bright[exterior].any()
    padded = out_labels == 255
    assert not bright[padded].any()  # padding is ignore in labels and black in the image


@pytest.mark.parametrize('name', ['astronaut', 'coffee', 'chelsea', 'camera', 'rocket'])
def test_real_photographs_through_readers_and_eval_transforms(tmp_path, name):
    skimage_data = pytest.importorskip('skimage.data')
    photo = getattr(skimage_data, name)()
    height, width = photo.shape[:2]
    (tmp_path / 'val2017').mkdir()
    Image.fromarray(photo).save(tmp_path / 'val2017' / f'{name}.jpg', quality=90)
    annotations = {
        'images': [{'id': 1, 'file_name': f'{name}.jpg', 'width': width, 'height': height}],
        'annotations': [{'id': 1, 'image_id': 1, 'category_id': 5, 'bbox': [10, 20, width / 2, height / 3],
                         'area': 1.0, 'iscrowd': 0}],
        'categories': [{'id': 5, 'name': 'thing'}],
    }
    (tmp_path / 'instances.json').write_text(json.dumps(annotations))
    image, target = CocoInstances(tmp_path / 'val2017', tmp_path / 'instances.json', T.detection_eval())[0]
    assert image.shape == (3, height, width) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1
    torch.testing.assert_close(target['boxes'], torch.tensor([[10, 20, 10 + width / 2, 20 + height / 3]]))

    (tmp_path / 'cls' / 'photo').mkdir(parents=True)
    Image.fromarray(photo).save(tmp_path / 'cls' / 'photo' / f'{name}.png')
    tensor, label, path = ClassificationFolder(tmp_path / 'cls', T.classification_eval(224))[0]
    assert tensor.shape == (3, 224, 224) and label == 0 and path.endswith(f'{name}.png') and torch.isfinite(tensor).all()
    assert abs(float(tensor.mean())) < 3  # normalised, not raw 0..255


def test_normalisation_comes_from_the_encoder_config():
    assert encoder_normalization('vlm_vit_small_patch16_rope_rms') == IMAGENET
    assert encoder_normalization('vit_base_patch16_clip_224.openai')[0] != IMAGENET[0]
