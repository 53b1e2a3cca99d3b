"""The real DINOv2-small converted into the vlm RoPE / RMSNorm encoder: the same features as timm's DINOv2 at two
sizes, and dense features that still recognise real photographs by what they show, not by their colours."""
import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F

import vlm
from vlm.encoder.conversion import write_converted

from .conftest import needs_dinov2

pytestmark = [pytest.mark.pretrained, needs_dinov2]
MEAN, STD = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def _photos():
    """The real photographs that skimage and scikit-learn ship (no download)."""
    from skimage import data
    from sklearn.datasets import load_sample_image

    return [data.chelsea(), data.coffee(), data.astronaut(), data.rocket(), load_sample_image('china.jpg'),
            load_sample_image('flower.jpg')]


def _two_views(photo: np.ndarray):
    """The left three quarters in colour, and the right three quarters mirrored in grey: the same things, other
    pixels and no colour to match on. (3, 224, 224) each, normalised."""
    image = torch.from_numpy(np.array(photo)).permute(2, 0, 1).float() / 255
    width = image.shape[-1]
    left = image[:, :, : width * 3 // 4]
    right = image[:, :, width // 4:].flip(-1).mean(0, keepdim=True).expand(3, -1, -1)
    return [(F.interpolate(view[None], size=(224, 224), mode='bilinear', antialias=True)[0] - MEAN) / STD
            for view in (left, right)]


def _retrieval(encoder) -> float:
    """How often a photo's colour view has its own grey view as the nearest (mean patch feature, cosine)."""
    views = [_two_views(photo) for photo in _photos()]
    with torch.no_grad():
        colour = vlm.dense_features(encoder.eval(), torch.stack([v[0] for v in views])).last.mean((2, 3))
        grey = vlm.dense_features(encoder.eval(), torch.stack([v[1] for v in views])).last.mean((2, 3))
    similarity = F.normalize(colour, dim=1) @ F.normalize(grey, dim=1).T
    return float((similarity.argmax(1) == torch.arange(len(views))).float().mean())


@pytest.fixture(scope='module')
def converted(dinov2_folder, tmp_path_factory):
    source = timm.create_model(f'local-dir:{dinov2_folder}', pretrained=True).eval()
    out = tmp_path_factory.mktemp('converted') / 'dinov2-small-rope-rms'
    loaded, difference = write_converted(source, str(out), 'dinov2-small')
    return source, loaded, difference


def test_the_real_dinov2_converts_exactly(converted):
    source, encoder, difference = converted
    assert type(encoder).__name__ == 'VisionTransformerRopeRms' and difference < 1e-4  # at 518 and 770 px
    for size in (224, 308):
        images = torch.randn(2, 3, size, size)
        with torch.no_grad():
            ours, theirs = encoder.forward_features(images), source.forward_features(images)
        assert (ours - theirs).abs().max() < 1e-4 * theirs.abs().max()


def test_the_converted_dense_features_recognise_real_photographs(converted):
    _, encoder, _ = converted
    torch.manual_seed(0)
    random = timm.create_model('vlm_vit_small_patch16_rope_rms', patch_size=14, num_classes=0)
    ours, chance = _retrieval(encoder), _retrieval(random)
    assert ours >= 4 / 6 and chance <= 2 / 6, (ours, chance)  # measured: 4/6 against a random encoder's 1/6
