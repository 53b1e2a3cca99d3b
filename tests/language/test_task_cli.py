"""VisionLanguageTask through the `vlm` entry point: fit, validate, export, caption, ask; freeze policies."""
import json
from pathlib import Path

import pytest
import torch
import yaml

from vlm.cli import main as vlm_main
from vlm.data import VisionLanguageDataModule
from vlm.encoder.weights import CheckpointShapeError
from vlm.language.collator import VisionLanguageCollator
from vlm.language.inference import VisionLanguagePredictor
from vlm.tasks import VisionLanguageTask

from .tiny import TINY_DECODER, tiny_tokenizer

TINY_ENCODER = dict(patch_size=8, img_size=64, depth=2, embed_dim=64, num_heads=2)
# room for 16 image tokens and the longest shapes caption in the 300-token BPE (about 50 tokens)
SHAPES_DECODER = {**TINY_DECODER, 'max_position_embeddings': 128}


def _shapes_paths() -> dict:
    """The shapes dataset's files, as `VisionLanguageDataModule` arguments."""
    return {'train_images': 'images/train', 'val_images': 'images/val',
            'train_captions': 'annotations/captions_train.json', 'val_captions': 'annotations/captions_val.json',
            'train_questions': 'annotations/v2_OpenEnded_shapes_train_questions.json',
            'val_questions': 'annotations/v2_OpenEnded_shapes_val_questions.json',
            'train_answers': 'annotations/v2_shapes_train_annotations.json',
            'val_answers': 'annotations/v2_shapes_val_annotations.json', 'vqa_image_filename': '{image_id:012d}.png'}


def _config(tmp_path: Path, shapes: Path, **model_args) -> Path:
    config = {
        'seed_everything': 0,
        'trainer': {
            'max_epochs': 1, 'limit_train_batches': 3, 'accelerator': 'cpu', 'devices': 1, 'enable_progress_bar': False,
            'enable_model_summary': False, 'log_every_n_steps': 1, 'limit_val_batches': 2,
            'logger': {'class_path': 'lightning.pytorch.loggers.CSVLogger',
                       'init_args': {'save_dir': str(tmp_path / 'runs'), 'name': 'vl'}},
        },
        'model': {'class_path': 'vlm.tasks.VisionLanguageTask', 'init_args': {
            'encoder': 'vlm_vit_tiny_patch16_rope_rms', 'encoder_kwargs': TINY_ENCODER, 'decoder': SHAPES_DECODER,
            'pixel_shuffle': 2, 'image_size': 64, 'tokenizer_vocab_size': 300, 'max_new_tokens': 4,
            'monitor': 'val/vqa_acc', 'optimization': {'lr': 1e-3, 'warmup_epochs': 0.1},
            **model_args}},
        'data': {'class_path': 'vlm.data.VisionLanguageDataModule', 'init_args': {
            'root': str(shapes), 'tasks': ['captions', 'vqa'], **_shapes_paths(), 'batch_size': 4,
            'num_workers': 0}},
    }
    path = tmp_path / 'config.yaml'
    path.write_text(yaml.safe_dump(config))
    return path


def test_fit_validate_export_caption_ask(tmp_path, shapes, capsys):
    config = _config(tmp_path, shapes)
    assert vlm_main(['fit', '--config', str(config)]) == 0
    run = tmp_path / 'runs' / 'vl' / 'version_0'
    header = (run / 'metrics.csv').read_text().splitlines()[0].split(',')
    for metric in ('val/BLEU4', 'val/CIDEr', 'val/ROUGE_L', 'val/vqa_acc', 'val/loss', 'train/loss'):
        assert metric in header
    last = run / 'checkpoints' / 'last.ckpt'
    checkpoint = torch.load(last, map_location='cpu', weights_only=True)
    assert 'tokenizer.json' in checkpoint['vlm_tokenizer_files']  # the BPE trained at fit travels with it

    # validate from the checkpoint alone: the tokenizer comes from the checkpoint
    assert vlm_main(['validate', '--config', str(config), '--ckpt_path', str(last)]) == 0

    out = tmp_path / 'export'
    assert vlm_main(['export', '--ckpt', str(last), '--out', str(out)]) == 0
    for name in ('config.json', 'model.safetensors', 'tokenizer.json', 'processor_config.json'):
        assert (out / name).is_file()

    images = sorted((shapes / 'images' / 'val').glob('*.png'))[:2]
    corrupt = tmp_path / 'corrupt.png'
    corrupt.write_bytes(images[0].read_bytes()[:100])
    capsys.readouterr()
    assert vlm_main(['caption', '--model', str(out), str(images[0]), str(corrupt), str(images[1])]) == 1
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert [line.split('\t')[0] for line in lines] == [str(images[0]), str(images[1])]
    assert 'corrupt.png' in captured.err

    assert vlm_main(['ask', '--model', str(out), '--question', 'what color is the circle?', '--json',
                     str(images[0])]) == 0
    record = json.loads(capsys.readouterr().out.strip())
    assert record['image'] == str(images[0]) and record['error'] is None and isinstance(record['text'], str)
    assert vlm_main(['ask', '--model', str(out), '--question', '  ', str(images[0])]) == 1
    assert 'empty question' in capsys.readouterr().err

    # Python: the exported model equals the trained module, and runs at another resolution
    task = VisionLanguageTask.load_from_checkpoint(last, map_location='cpu', weights_only=True)
    predictor = VisionLanguagePredictor.from_pretrained(out)
    for name, tensor in task.model.state_dict().items():
        assert torch.equal(tensor, predictor.model.state_dict()[name]), name
    assert len(predictor.caption([str(images[0])], max_new_tokens=3)) == 1
    half = tmp_path / 'export_bf16'
    assert vlm_main(['export', '--ckpt', str(last), '--out', str(half), '--precision', 'bf16']) == 0
    stored = VisionLanguagePredictor.from_pretrained(half)  # the decoder in bf16 as stored, the image path in fp32
    assert stored.model.language_model.lm_head.weight.dtype == torch.bfloat16
    for name, tensor in task.model.state_dict().items():
        loaded = stored.model.state_dict()[name]
        assert torch.equal(tensor.to(torch.bfloat16).to(loaded.dtype), loaded), name
    assert (half / 'model.safetensors').stat().st_size < 0.55 * (out / 'model.safetensors').stat().st_size
    bigger = VisionLanguagePredictor.from_pretrained(out, image_size=96)
    assert bigger.processor.image_processor.tokens_per_image == 36
    assert len(bigger.ask([str(images[0])], 'how many shapes are there?', max_new_tokens=3)) == 1


def test_freeze_policy_and_learning_rates():
    task = VisionLanguageTask(encoder='vlm_vit_tiny_patch16_rope_rms', encoder_kwargs=TINY_ENCODER,
                              decoder=TINY_DECODER, pixel_shuffle=2, image_size=64,
                              trainable=('projector', 'decoder'), optimization={'lr': 1e-3}, lr_decoder=1e-4)
    task.build(tiny_tokenizer())
    assert not any(p.requires_grad for p in task.model.encoder.parameters())
    assert all(p.requires_grad for p in task.model.projector.parameters())
    groups = {group['name']: group for group in task.optimizer_params()}
    assert set(groups) == {'projector', 'projector_no_decay', 'decoder', 'decoder_no_decay'}
    assert groups['projector']['lr'] == 1e-3 and groups['decoder']['lr'] == 1e-4
    assert groups['decoder_no_decay']['weight_decay'] == 0.0
    optimised = {id(p) for group in groups.values() for p in group['params']}
    assert optimised == {id(p) for p in task.model.parameters() if p.requires_grad}
    task.train()
    assert not task.model.encoder.training and task.model.language_model.training
    with pytest.raises(ValueError, match='trainable parts'):
        VisionLanguageTask(trainable=('vision',))


def test_stage_one_trains_only_the_projector(tmp_path, shapes):
    config = _config(tmp_path, shapes, trainable=['projector'])
    assert vlm_main(['fit', '--config', str(config), '--trainer.limit_val_batches', '0']) == 0
    checkpoint = tmp_path / 'runs' / 'vl' / 'version_0' / 'checkpoints' / 'last.ckpt'
    trained = VisionLanguageTask.load_from_checkpoint(checkpoint, map_location='cpu', weights_only=True)
    torch.manual_seed(0)  # the same seed as `seed_everything: 0` builds the same initial weights
    initial = VisionLanguageTask(**{k: v for k, v in trained.hparams.items()})
    initial.build(trained.processor.tokenizer)
    before, after = initial.model.state_dict(), trained.model.state_dict()
    changed = {name.split('.')[0] for name in after if not torch.equal(before[name], after[name])}
    assert changed == {'projector'}


def test_init_checkpoint_continues_with_its_own_tokenizer(tmp_path, shapes):
    """Stage 2 from stage 1: without a `tokenizer`, the checkpoint's own is used (a BPE trained anew on this
    stage's texts would read the embeddings under other ids), so the model starts exactly as stage 1 ended; a
    different tokenizer is refused."""
    config = _config(tmp_path, shapes)
    assert vlm_main(['fit', '--config', str(config), '--trainer.limit_val_batches', '0']) == 0
    checkpoint = tmp_path / 'runs' / 'vl' / 'version_0' / 'checkpoints' / 'last.ckpt'
    stage_one = VisionLanguageTask.load_from_checkpoint(checkpoint, map_location='cpu', weights_only=True)
    model_args = dict(encoder='vlm_vit_tiny_patch16_rope_rms', encoder_kwargs=TINY_ENCODER, decoder=SHAPES_DECODER,
                      pixel_shuffle=2, image_size=64, tokenizer_vocab_size=300)
    stage_two = VisionLanguageTask(init_checkpoint=str(checkpoint), **model_args)
    stage_two.setup('fit')
    assert stage_two.processor.tokenizer.get_vocab() == stage_one.processor.tokenizer.get_vocab()
    after_stage_one, start_of_stage_two = stage_one.model.state_dict(), stage_two.model.state_dict()
    assert after_stage_one.keys() == start_of_stage_two.keys()
    assert all(torch.equal(after_stage_one[name], start_of_stage_two[name]) for name in after_stage_one)
    other = tmp_path / 'other_tokenizer'
    tiny_tokenizer().save_pretrained(other)
    with pytest.raises(CheckpointShapeError, match='tokenizer differs'):
        VisionLanguageTask(init_checkpoint=str(checkpoint), tokenizer=str(other), **model_args).setup('fit')


def test_grouped_records_train_on_several_texts_per_image_encoded_once(shapes):
    datamodule = VisionLanguageDataModule(root=str(shapes), tasks=('captions', 'vqa'), group_by_image=True,
                                          **_shapes_paths(), batch_size=2, num_workers=0)
    datamodule.setup('fit')
    captions, questions = datamodule.datasets['train'].datasets
    assert len(questions) == len(captions)  # one record per image, holding all its questions
    records = [captions[0], questions[0], questions[1]]
    task = VisionLanguageTask(encoder='vlm_vit_tiny_patch16_rope_rms', encoder_kwargs=TINY_ENCODER,
                              decoder={**TINY_DECODER, 'max_position_embeddings': 256}, pixel_shuffle=2, image_size=64,
                              texts_per_image=0)
    task.build(tiny_tokenizer())
    runs = [len(records[0].captions), len(records[1].questions), len(records[2].questions)]
    texts = sum(runs)
    inputs = VisionLanguageCollator(task.processor, training=True, texts_per_image=0)(records)['inputs']
    assert inputs['input_ids'].shape[0] == texts and inputs['pixel_values'].shape[0] == 3
    assert inputs['image_index'].tolist() == [i for i, n in enumerate(runs) for _ in range(n)]
    two = VisionLanguageCollator(task.processor, training=True, texts_per_image=2)(records)['inputs']
    assert two['input_ids'].shape[0] == 6
    # evaluation: the first caption / question of each record, with its prompt for generation
    evaluation = VisionLanguageCollator(task.processor, training=False)(records)
    assert evaluation['inputs']['input_ids'].shape[0] == 3 and evaluation['inputs']['image_index'].tolist() == [0, 1, 2]
    assert evaluation['generation_inputs']['input_ids'].shape[0] == 3
    assert evaluation['targets'][1].question_id == records[1].questions[0].question_id
    # packed: all the chosen questions of an image in one multi-turn sequence, the image once
    packing = VisionLanguageCollator(task.processor, training=True, texts_per_image=2, packing='turns')
    packed = packing(records)['inputs']
    assert packed['input_ids'].shape[0] == 2 + 1 + 1  # captions stay one sequence each
    eos = task.processor.tokenizer.eos_token_id
    learned_eos = (packed['labels'] == eos).sum(1).tolist()
    assert learned_eos[:2] == [1, 1] and learned_eos[2:] == [2, 2]  # two answers learned in each packed sequence
    assert packed['image_index'].tolist() == [0, 0, 1, 2]
    with pytest.raises(ValueError, match='texts_per_image'):
        VisionLanguageTask(texts_per_image=-1)


def test_conversations_mixed_with_captions_train_and_every_turn_is_scored(tmp_path, shapes, capsys):
    """The shapes conversation file (one- and two-image dialogues) mixed with captions by weights: fit logs the
    conversation accuracy per image count, predict writes every turn's answer."""
    config = _config(tmp_path, shapes, monitor='val/chat_acc')
    data = yaml.safe_load(config.read_text())
    data['model']['init_args']['decoder'] = {**SHAPES_DECODER, 'max_position_embeddings': 160}
    data['data']['init_args'].update(
        tasks=['captions', 'conversations'], val_tasks=['conversations'], mixture_weights={'captions': 1,
                                                                                            'conversations': 3},
        samples_per_epoch=12, train_conversations='annotations/conversations_train.json',
        val_conversations='annotations/conversations_val.json')
    data['trainer']['limit_val_batches'] = 1.0
    config.write_text(yaml.safe_dump(data))
    assert vlm_main(['fit', '--config', str(config)]) == 0
    run = tmp_path / 'runs' / 'vl' / 'version_0'
    header = (run / 'metrics.csv').read_text().splitlines()[0].split(',')
    assert {'val/chat_acc', 'val/chat_acc/1_images', 'val/chat_acc/2_images'} <= set(header)
    assert 'val/vqa_acc' not in header and 'val/CIDEr' not in header  # validation: conversations only
    assert vlm_main(['predict', '--config', str(config), '--ckpt_path', str(run / 'checkpoints' / 'last.ckpt')]) == 0
    turns = json.loads((run.parent / 'version_1' / 'predictions' / 'conversation_results.json').read_text())
    dialogues = json.loads((shapes / 'annotations' / 'conversations_val.json').read_text())
    assert len(turns) == sum(len(d['conversations']) // 2 for d in dialogues)  # 4 x 5 turns + 1 x 2 turns
    assert {(t['id'], t['turn']) for t in turns} == {(d['id'], k) for d in dialogues
                                                    for k in range(1, len(d['conversations']), 2)}
