"""The GPU suite's smoke mode (`python -m benchmarks.speed.gpu_suite --smoke`) runs every part end to end on the
CPU, and its 2:4 mask is NVIDIA's pattern."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vlm.data.shapes import generate_shapes
from vlm.encoder.sparsity import semi_structured_mask

REPO = Path(__file__).resolve().parents[1]


def test_semi_structured_mask_keeps_the_two_largest_of_every_four():
    weight = torch.randn(6, 16, generator=torch.Generator().manual_seed(0))
    mask = semi_structured_mask(weight)
    for row in range(6):
        for group in range(4):
            values = weight[row, 4 * group:4 * group + 4].abs().tolist()
            largest = sorted(range(4), key=lambda k: -values[k])[:2]  # the reference: sort each group by hand
            assert mask[row, 4 * group:4 * group + 4].tolist() == [k in largest for k in range(4)]
    assert int(mask.sum()) == weight.numel() // 2
    with pytest.raises(ValueError, match='multiple of 4'):
        semi_structured_mask(torch.randn(2, 6))


def test_smoke_mode_runs_every_part_and_writes_its_tables(tmp_path):
    shapes = generate_shapes(tmp_path / 'shapes', train_images=8, val_images=4, image_size=64,
                             classification_images_per_class=4, classification_val_images_per_class=2,
                             classification_image_size=64, workers=1)
    out = tmp_path / 'suite'
    result = subprocess.run([sys.executable, '-m', 'benchmarks.speed.gpu_suite', '--smoke', '--no-compile',
                             '--out', str(out), '--shapes', str(shapes), '--decoder', str(tmp_path / 'no_decoder')],
                            cwd=REPO, capture_output=True, text=True, timeout=900)
    assert (out / 'gpu_suite.json').is_file(), result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((out / 'gpu_suite.json').read_text())
    failed = [row for row in report['rows'] if row['name'] == 'FAILED']
    assert result.returncode == 0 and not failed, (failed, result.stderr[-3000:])
    parts = {row['part'] for row in report['rows']}
    assert parts == {'encoder', 'sparsity', 'strategies', 'vqa'}
    encoder = [row for row in report['rows'] if row['part'] == 'encoder']
    assert encoder[0]['ratio_to_timm'] == 1.0 and all(row['img_per_s'] > 0 and row['mfu'] > 0 for row in encoder)
    accuracy = next(row for row in report['rows'] if row['name'] == 'shapes classifier, 2:4 fine-tune')
    assert accuracy['measured_sparsity'] == pytest.approx(0.5)
    assert 0 <= accuracy['two_four_acc1'] <= 1 and 0 <= accuracy['dense_acc1'] <= 1
    runs = [row for row in report['rows'] if row['part'] == 'strategies' and 'peak_memory_gib' in row]
    assert len(runs) == 2 and all(row['peak_memory_gib'] > 0 and row['model_state_estimate_gib'] > 0 for row in runs)
    vqa = {row['name']: row for row in report['rows'] if row['part'] == 'vqa'}
    assert vqa['from scratch']['vqa_acc'] is not None and vqa['from scratch']['wall_s'] > 0  # trained, then validated
    assert 'no_decoder' in vqa['pretrained decoder']['skipped']
    table = (out / 'gpu_suite.md').read_text()
    assert table.startswith('GPU suite (smoke)') and '| encoder |' in table and '| sparsity |' in table
