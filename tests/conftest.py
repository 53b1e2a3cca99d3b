import random

import numpy as np
import pytest
import torch

import vlm  # noqa: F401  (registers the encoders)


@pytest.fixture(autouse=True)
def _seed_everything():
    """Every test starts from the same random state."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield
