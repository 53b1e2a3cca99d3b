"""The SmolLM2 recipes' two stages through the `vlm` entry point, on a tiny model: stage 1 trains the cell tagger
(and the encoder) from instance annotations with two loader workers and scores it; stage 2 starts from its
checkpoint (`init_checkpoint`) and trains the answers with the tagger frozen."""
from pathlib import Path

import torch
import yaml

from vlm.cli import main as vlm_main
from vlm.tasks import VisionLanguageTask

from .test_task_cli import SHAPES_DECODER, TINY_ENCODER, _shapes_paths

TAGS = {'vocabularies': {'category': ['circle', 'cross', 'ring', 'square', 'star', 'triangle'],
                         'color': ['red', 'green', 'blue', 'yellow', 'purple', 'cyan']},
        'indices': [0], 'mean_rgb': 2, 'hidden_size': 16}
INSTANCES = {'train_instances': 'annotations/instances_train.json', 'val_instances': 'annotations/instances_val.json'}


def _config(tmp_path: Path, shapes: Path, name: str, model: dict, data: dict) -> Path:
    config = {
        'seed_everything': 0,
        'trainer': {'max_epochs': 1, 'limit_train_batches': 3, 'limit_val_batches': 1, 'accelerator': 'cpu',
                    'devices': 1, 'enable_progress_bar': False, 'enable_model_summary': False, 'log_every_n_steps': 1,
                    'logger': {'class_path': 'lightning.pytorch.loggers.CSVLogger',
                               'init_args': {'save_dir': str(tmp_path / 'runs'), 'name': name}}},
        'model': {'class_path': 'vlm.tasks.VisionLanguageTask', 'init_args': {
            'encoder': 'vlm_vit_tiny_patch16_rope_rms', 'encoder_kwargs': TINY_ENCODER, 'decoder': SHAPES_DECODER,
            'pixel_shuffle': 2, 'image_size': 64, 'tokenizer_vocab_size': 300, 'max_new_tokens': 4, 'tags': TAGS,
            'optimization': {'lr': 1e-2, 'warmup_epochs': 0.0}, **model}},
        'data': {'class_path': 'vlm.data.VisionLanguageDataModule', 'init_args': {
            'root': str(shapes), **_shapes_paths(), **INSTANCES, 'batch_size': 4, 'num_workers': 2, **data}},
    }
    path = tmp_path / f'{name}.yaml'
    path.write_text(yaml.safe_dump(config))
    return path


def _parts(task: VisionLanguageTask) -> dict:
    return {name: tensor.clone() for name, tensor in task.model.state_dict().items()}


def test_stage_two_starts_from_the_tagger_stage_one_trained(tmp_path, shapes):
    stage_one = _config(tmp_path, shapes, 'tagger', {'trainable': ['encoder', 'tagger'], 'lr_encoder': 1e-4,
                                                      'monitor': 'val/tags/objects'}, {'tasks': ['instances']})
    assert vlm_main(['fit', '--config', str(stage_one)]) == 0
    run = tmp_path / 'runs' / 'tagger' / 'version_0'
    header = (run / 'metrics.csv').read_text().splitlines()[0].split(',')
    for metric in ('train/tag_loss', 'val/tags/category', 'val/tags/color', 'val/tags/centre_f1', 'val/tags/count'):
        assert metric in header
    tagger_checkpoint = run / 'checkpoints' / 'last.ckpt'
    trained = VisionLanguageTask.load_from_checkpoint(tagger_checkpoint, map_location='cpu', weights_only=True)
    torch.manual_seed(0)
    initial = VisionLanguageTask(**dict(trained.hparams))
    initial.build(trained.processor.tokenizer)
    before, after = _parts(initial), _parts(trained)
    changed = {name.split('.')[0] for name in after if not torch.equal(before[name], after[name])}
    assert changed == {'encoder', 'tagger'}  # stage 1 trains only what it names

    stage_two = _config(tmp_path, shapes, 'vqa', {'init_checkpoint': str(tagger_checkpoint), 'trainable': ['projector'],
                                                  'texts_per_image': 0, 'monitor': 'val/vqa_acc'},
                        {'tasks': ['vqa'], 'group_by_image': True, 'attach_instances': True})
    assert vlm_main(['fit', '--config', str(stage_two)]) == 0
    answered = VisionLanguageTask.load_from_checkpoint(tmp_path / 'runs' / 'vqa' / 'version_0' / 'checkpoints' /
                                                       'last.ckpt', map_location='cpu', weights_only=True)
    final = _parts(answered)
    changed = {name.split('.')[0] for name in final if not torch.equal(after[name], final[name])}
    assert changed == {'projector'}  # the encoder and the tagger are stage 1's, unchanged
    assert 'val/tags/objects' in (tmp_path / 'runs' / 'vqa' / 'version_0' / 'metrics.csv').read_text()
