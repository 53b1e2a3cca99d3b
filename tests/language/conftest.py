"""Fixtures shared by the vision-language tests."""
from pathlib import Path

import pytest

from vlm.data.shapes import generate_shapes


@pytest.fixture(scope='module')
def shapes(tmp_path_factory) -> Path:
    """A small shapes dataset (12 train, 4 val images of 64 px), once per test module."""
    root = tmp_path_factory.mktemp('shapes')
    generate_shapes(root, train_images=12, val_images=4, image_size=64, classification_images_per_class=1,
                    classification_val_images_per_class=1, classification_image_size=32, workers=1)
    return root
