"""The cell tagger: its targets against the shapes generator's own scenes, its tokens (words of the decoder at their
scale, following the image), and the oracle."""
from pathlib import Path

import numpy as np
import pytest
import torch

from vlm.data.instance_tags import InstanceImages, InstanceIndex, flip_instances
from vlm.data.shapes import generate_shapes, shapes_paths
from vlm.data.shapes.constants import CATEGORY_NAMES, COLOURS
from vlm.data.shapes.generate import image_rngs
from vlm.data.shapes.scene import layout_scene, seen_objects
from vlm.errors import InputError
from vlm.language.tagger import annotated_tags, tag_loss, tag_tokens, word_embeddings
from vlm.language.tags import IGNORE_TAG, TagSettings, cell_targets

from .tiny import random_images, tiny_model

SEED, SIZE = 5, 64
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
VOCABULARIES = {'category': list(CATEGORY_NAMES), 'color': list(COLOURS)}
TAGS = {'vocabularies': VOCABULARIES, 'indices': [0], 'hidden_size': 16, 'mean_rgb': 2}


@pytest.fixture(scope='module')
def shapes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('tag_shapes')
    return generate_shapes(root, train_images=16, val_images=2, image_size=SIZE, seed=SEED,
                           classification_images_per_class=1, classification_val_images_per_class=1,
                           classification_image_size=32, workers=1)


def _labels(words, settings: TagSettings) -> torch.Tensor:
    return torch.tensor([[settings.vocabularies[f].index(w[f]) for f in settings.vocabularies] for w in words],
                        dtype=torch.long).reshape(-1, len(settings.vocabularies))


def test_targets_follow_the_generators_scenes(shapes):
    """Read back from the instances JSON, every object's centroid cell is marked and labelled with its words, and
    every other cell is labelled with the object owning most of it (at least min_cover of it), as the generator's
    own owner map says."""
    settings = TagSettings(vocabularies=VOCABULARIES)
    index = InstanceIndex(shapes_paths(shapes, 'train')['instances'])
    grid, checked_centres = 8, 0
    for position, image_id in enumerate(index.index.image_ids):
        scene = layout_scene(image_rngs(SEED, 'train', position).layout, SIZE)  # the generator's own scene
        seen = seen_objects(scene)
        instances = index(image_id)
        np.testing.assert_array_equal(instances['owner'].numpy(), scene.owner)
        assert [w['category'] for w in instances['words']] == [o.category for o in seen]
        assert [w['color'] for w in instances['words']] == [o.colour for o in seen]
        centres, labels = cell_targets(instances['owner'], instances['centroids'], _labels(instances['words'], settings),
                                       (grid, grid), settings.min_cover)
        cell = SIZE // grid
        centre_cells = {}
        for k, obj in enumerate(seen):  # the generator's centroid (pixel indices) -> its cell
            centre_cells[(int((obj.y + 0.5) // cell), int((obj.x + 0.5) // cell))] = k
        assert int(centres.sum()) == len(centre_cells)
        for (row, column), k in centre_cells.items():
            assert centres[row, column] == 1
            assert labels[0, row, column] == CATEGORY_NAMES.index(seen[k].category)
            assert labels[1, row, column] == list(COLOURS).index(seen[k].colour)
            checked_centres += 1
        for row in range(grid):
            for column in range(grid):
                if (row, column) in centre_cells:
                    continue
                owners = scene.owner[row * cell:(row + 1) * cell, column * cell:(column + 1) * cell]
                counts = np.bincount(owners.ravel() + 1, minlength=len(seen) + 1)[1:]
                if len(seen) and counts.max() >= settings.min_cover * cell * cell:
                    assert labels[0, row, column] == CATEGORY_NAMES.index(seen[int(counts.argmax())].category)
                else:
                    assert labels[0, row, column] == IGNORE_TAG and labels[1, row, column] == IGNORE_TAG
    assert checked_centres >= 20


def test_mirrored_image_mirrors_its_targets(shapes):
    settings = TagSettings(vocabularies=VOCABULARIES)
    index = InstanceIndex(shapes_paths(shapes, 'train')['instances'])
    image_id = next(i for i in index.index.image_ids if len(index(i)['words']) >= 2)
    instances = index(image_id)
    labels = _labels(instances['words'], settings)
    centres, cells = cell_targets(instances['owner'], instances['centroids'], labels, (8, 8), settings.min_cover)
    flipped = flip_instances(instances)
    mirrored, mirrored_cells = cell_targets(flipped['owner'], flipped['centroids'], labels, (8, 8), settings.min_cover)
    assert torch.equal(mirrored_cells, cells.flip(-1))
    # a centroid on a cell border may fall on either side once mirrored; the count and rows stay
    assert mirrored.sum() == centres.sum() and torch.equal(mirrored.sum(1), centres.sum(1))


def test_instance_images_draw_the_same_mirror_for_the_same_seed(shapes):
    dataset = InstanceImages(shapes_paths(shapes, 'train')['images'], shapes_paths(shapes, 'train')['instances'],
                             hflip=True)
    torch.manual_seed(1)
    first = [dataset[i] for i in range(6)]
    torch.manual_seed(1)
    again = [dataset[i] for i in range(6)]
    plain = InstanceImages(shapes_paths(shapes, 'train')['images'], shapes_paths(shapes, 'train')['instances'])
    mirrored = [torch.equal(a.image, b.image.flip(-1)) and not torch.equal(a.image, b.image)
                for a, b in zip(first, (plain[i] for i in range(6)))]
    assert all(torch.equal(a.image, b.image) for a, b in zip(first, again))
    assert 0 < sum(mirrored) < 6


def test_tag_tokens_are_the_decoders_word_embeddings():
    """A confident tag token is exactly E['red'] + E['circle'] of the decoder's input embeddings (so at their
    scale); an empty cell is zero."""
    model, processor = tiny_model(tags=TAGS)
    embeddings = model.get_input_embeddings().weight
    vocabularies = [word_embeddings(embeddings, ids) for ids in model.config.tag_word_ids]
    red = processor.tokenizer(' red', add_special_tokens=False).input_ids
    circle = processor.tokenizer(' circle', add_special_tokens=False).input_ids
    centres = torch.zeros(1, 2, 2)
    centres[0, 0, 1] = 1
    labels = torch.full((1, 2, 2, 2), IGNORE_TAG)
    labels[0, :, 0, 1] = torch.tensor([CATEGORY_NAMES.index('circle'), list(COLOURS).index('red')])
    tags = annotated_tags(centres, labels, [6, 6])
    tokens = tag_tokens(tags.centre, tags.words, vocabularies)  # (1, 4, D)
    expected = embeddings[red].mean(0) + embeddings[circle].mean(0)
    torch.testing.assert_close(tokens[0, 1], expected)
    assert tokens[0, [0, 2, 3]].abs().max() == 0
    word_norm = embeddings.norm(dim=1).mean()
    assert 0.5 * word_norm < tokens[0, 1].norm() < 3 * word_norm


def test_image_tokens_follow_the_image_and_start_as_tags():
    """With a tagger the projector's output starts at zero: the image tokens are the tag tokens, which differ from
    image to image; the oracle's tokens are the targets' words whatever the image."""
    model, processor = tiny_model(tags=TAGS)
    pixels = processor.pixel_values(random_images(2))
    with torch.no_grad():
        tokens, logits = model.encode_images(pixels)
        continuous = model.projector(torch.zeros(2, model.config.encoder_hidden_size, 4, 4))
    assert continuous.abs().max() == 0
    assert logits.centre.shape == (2, 2, 2) and [w.shape[1] for w in logits.words] == [6, 6]
    assert (tokens[0] - tokens[1]).abs().max() > 1e-4

    oracle, oracle_processor = tiny_model(tags={**TAGS, 'source': 'annotations'})
    centres, labels = torch.zeros(2, 2, 2), torch.full((2, 2, 2, 2), IGNORE_TAG)
    centres[:, 1, 1] = 1
    labels[:, :, 1, 1] = 2
    with torch.no_grad():
        tokens, _ = oracle.encode_images(pixels, centres, labels)
    torch.testing.assert_close(tokens[0], tokens[1])  # same tags, different images: the oracle reads the tags
    with pytest.raises(InputError, match='annotations'):
        oracle.encode_images(pixels)


def test_tag_loss_learns_a_scene():
    """A few steps of the tag loss on one image fit its targets (the loss is wired to the tagger)."""
    model, processor = tiny_model(tags=TAGS)
    pixels = processor.pixel_values(random_images(1))
    centres, labels = torch.zeros(1, 2, 2), torch.full((1, 2, 2, 2), IGNORE_TAG)
    centres[0, 0, 0] = 1
    labels[0, :, 0, 0] = torch.tensor([3, 4])
    optimizer = torch.optim.Adam(model.tagger.parameters(), lr=1e-2)
    model.train()
    for _ in range(30):
        loss = tag_loss(model.tag(pixels), centres, labels)['loss']
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    logits = model.tag(pixels)
    assert logits.centre.sigmoid()[0, 0, 0] > 0.9 and logits.centre.sigmoid()[0, 1, 1] < 0.1
    assert logits.words[0][0, :, 0, 0].argmax() == 3 and logits.words[1][0, :, 0, 0].argmax() == 4


def test_processor_refuses_an_unknown_word():
    _, processor = tiny_model(tags=TAGS)
    instances = {'owner': torch.zeros(8, 8, dtype=torch.int16), 'centroids': torch.tensor([[0.5, 0.5]]),
                 'words': [{'category': 'circle', 'color': 'pink'}]}
    with pytest.raises(InputError, match="'pink' is not among the tag words of 'color'"):
        processor.tag_targets([instances])
    with pytest.raises(InputError, match="no 'color'"):
        processor.tag_targets([{**instances, 'words': [{'category': 'circle'}]}])


def test_settings_refuse_bad_values():
    with pytest.raises(InputError, match='vocabularies'):
        TagSettings(vocabularies={})
    with pytest.raises(InputError, match='distinct'):
        TagSettings(vocabularies={'color': ['red', 'red']})
    with pytest.raises(InputError, match='source'):
        TagSettings(vocabularies=VOCABULARIES, source='guess')
