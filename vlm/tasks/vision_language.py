"""Training the vision-language model for captioning and VQA (separately or mixed), with generation-based
validation: BLEU-4 / CIDEr / ROUGE-L for captions, VQAv2 accuracy for answers."""
from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch

from vlm.distributed import gather_objects
from vlm.encoder.weights import CheckpointShapeError, load_encoder_weights, shape_mismatches
from vlm.language.build import build_vision_language_model
from vlm.language.prompts import caption_prompt, target_text, vqa_prompt
from vlm.language.tokenizer import load_tokenizer, train_bpe_tokenizer

from .base import VlmTask

PARTS = ('encoder', 'projector', 'decoder')
TOKENIZER_KEY = 'vlm_tokenizer_files'


class VisionLanguageTask(VlmTask):
    """Encoder -> projector -> Llama decoder, trained on caption and/or VQA batches (`VisionLanguageDataModule`).

    Loss: next-token cross-entropy on the caption / answer tokens and their eos only.
    tokenizer: a local Hugging Face tokenizer directory; None trains a byte-level BPE of `tokenizer_vocab_size`
        on the training captions and questions (it travels inside every checkpoint and export).
    decoder: `LlamaConfig` kwargs for a new decoder; decoder_path: a local pretrained Llama directory instead
        (its tokenizer is used when `tokenizer` is None).
    encoder_checkpoint: initial encoder weights (.safetensors, .pth or any vlm Lightning checkpoint).
    init_checkpoint: initial weights of the whole model from an earlier VisionLanguageTask checkpoint (stage 2
        starts from stage 1's); unlike `--ckpt_path` it restores no optimizer or step. Without `tokenizer` /
        `decoder_path` the checkpoint's own tokenizer is used; a different one is refused.
    trainable: which parts learn: ('projector',) is LLaVA stage 1, ('projector', 'decoder') stage 2; the rest
        are frozen (requires_grad False, eval mode). lr_encoder / lr_decoder: their learning rates (default
        `lr`, which the projector uses).
    texts_per_image: how many of an image's captions (or, with the datamodule's `group_by_image`, questions) one
        training step learns, drawn without replacement; the image is encoded once for all of them. 0: all.
    activation_checkpointing: recompute encoder and decoder blocks in the backward pass (less memory, ~30% slower).
    compile_encoder: `torch.compile` the encoder's blocks in place (state dict keys unchanged): True, or a dict of
        `torch.compile` keywords (see `VlmTask`, `compile_blocks`).
    Under `ModelParallelStrategy` (FSDP2) every encoder block, decoder layer and the whole model are sharded with
    `fully_shard` over the data-parallel mesh in `configure_model`.
    monitor: the checkpointed metric, 'val/CIDEr', 'val/vqa_acc' or 'val/loss'.
    max_new_tokens / num_beams: generation at validation, test and predict.
    """

    def __init__(
            self,
            encoder: str = 'vlm_vit_small_patch16_rope_rms',
            encoder_kwargs: Optional[Dict[str, Any]] = None,
            encoder_checkpoint: Optional[str] = None,
            init_checkpoint: Optional[str] = None,
            decoder: Optional[Dict[str, Any]] = None,
            decoder_path: Optional[str] = None,
            tokenizer: Optional[str] = None,
            tokenizer_vocab_size: int = 1024,
            pixel_shuffle: int = 1,
            projector_hidden_size: Optional[int] = None,
            image_size: int = 224,
            trainable: Sequence[str] = PARTS,
            lr_encoder: Optional[float] = None,
            lr_decoder: Optional[float] = None,
            truncation: bool = False,
            texts_per_image: int = 1,
            activation_checkpointing: bool = False,
            compile_encoder: Union[bool, Dict[str, Any]] = False,
            monitor: str = 'val/CIDEr',
            max_new_tokens: int = 32,
            num_beams: int = 1,
            optimizer: str = 'adamw',
            lr: float = 1e-3,
            weight_decay: float = 0.05,
            warmup_epochs: float = 1.0,
            min_lr: float = 1e-6,
    ) -> None:
        super().__init__(optimizer, lr, weight_decay, None, warmup_epochs, min_lr, compile_encoder)
        self.save_hyperparameters()
        unknown = set(trainable) - set(PARTS)
        if unknown:
            raise ValueError(f'trainable parts must be among {PARTS}, got {sorted(unknown)}')
        if texts_per_image < 0:
            raise ValueError(f'texts_per_image must be >= 0 (0: all of an image\'s texts), got {texts_per_image}')
        self.monitor = monitor
        self.monitor_mode = 'min' if monitor.endswith('loss') else 'max'
        self.model = None
        self.processor = None
        self.tokenizer_files: Dict[str, str] = {}
        self._outputs: Dict[str, Dict[str, Any]] = {}

    # -- building ------------------------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """Build the model once the tokenizer is known: the given directory, the decoder's directory, or a BPE
        trained on the training texts (at any stage, so a sharded FSDP2 checkpoint can be restored into it).
        Without any, the model is built from the tokenizer inside the checkpoint when Lightning restores it."""
        if self.model is not None:
            return
        if self.hparams.tokenizer or self.hparams.decoder_path:
            self.build(load_tokenizer(self.hparams.tokenizer or self.hparams.decoder_path))
        elif self.hparams.init_checkpoint:
            # the earlier stage's token ids: a BPE trained anew on this stage's texts would scramble them
            path = self.hparams.init_checkpoint
            self.build(_tokenizer_from_files(_tokenizer_files_of(_read_checkpoint(path), path)))
        elif hasattr(self.trainer.datamodule, 'training_texts'):
            # deterministic: the same training texts give the tokenizer stored in this run's checkpoints
            self.build(train_bpe_tokenizer(self.trainer.datamodule.training_texts(),
                                           self.hparams.tokenizer_vocab_size))

    def build(self, tokenizer) -> None:
        hp = self.hparams
        self.model, self.processor = build_vision_language_model(
            tokenizer, hp.encoder, hp.encoder_kwargs, hp.decoder, hp.decoder_path, hp.pixel_shuffle,
            hp.projector_hidden_size, hp.image_size)
        if hp.encoder_checkpoint:
            load_encoder_weights(self.model.encoder, hp.encoder_checkpoint, strict=False)
        self.tokenizer_files = _tokenizer_to_files(tokenizer)
        if hp.init_checkpoint:
            self._load_initial_weights(hp.init_checkpoint)
        if hp.activation_checkpointing:
            self.model.encoder.set_grad_checkpointing(True)
            self.model.language_model.gradient_checkpointing_enable({'use_reentrant': False})
        self.maybe_compile_encoder()
        parts = self.parts()
        for name, module in parts.items():
            module.requires_grad_(name in hp.trainable)

    def configure_model(self) -> None:
        """FSDP2 under Lightning's `ModelParallelStrategy`: shard block by block, then the rest."""
        mesh = self.device_mesh
        if mesh is None or self.model is None:
            return
        from torch.distributed.fsdp import fully_shard

        data_parallel = mesh['data_parallel']
        for block in [*self.model.encoder.blocks, *self.model.language_model.model.layers]:
            fully_shard(block, mesh=data_parallel)
        fully_shard(self.model, mesh=data_parallel)

    def _load_initial_weights(self, path: str) -> None:
        checkpoint = _read_checkpoint(path)
        theirs, ours = _tokenizer_from_files(_tokenizer_files_of(checkpoint, path)), self.processor.tokenizer
        if theirs.get_vocab() != ours.get_vocab() or theirs.all_special_tokens != ours.all_special_tokens:
            raise CheckpointShapeError(
                f'{path}: its tokenizer differs from this run\'s, so its token embeddings would be read under other '
                'ids; leave `tokenizer` unset to continue with the checkpoint\'s own')
        state = checkpoint.get('state_dict', {})
        weights = {key[len('model.'):]: value for key, value in state.items() if key.startswith('model.')}
        mismatched = shape_mismatches(weights, self.model.state_dict())
        if mismatched or not weights:
            raise CheckpointShapeError(f'{path}: does not fit this model:\n  ' + '\n  '.join(mismatched or ['no weights']))
        self.model.load_state_dict(weights, strict=True)

    def parts(self) -> Dict[str, torch.nn.Module]:
        return {'encoder': self.model.encoder, 'projector': self.model.projector,
                'decoder': self.model.language_model}

    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        checkpoint[TOKENIZER_KEY] = self.tokenizer_files

    def on_load_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        """(Re)build the model with the checkpoint's own tokenizer before its weights are loaded."""
        files = checkpoint.get(TOKENIZER_KEY)
        if files is None:
            raise ValueError('this checkpoint has no tokenizer: was it written by VisionLanguageTask?')
        if self.model is None or files != self.tokenizer_files:
            self.build(_tokenizer_from_files(files))
        super().on_load_checkpoint(checkpoint)

    def _require_model(self) -> None:
        if self.model is None:
            raise ValueError('VisionLanguageTask has no tokenizer: give `model.tokenizer` (a directory), '
                             '`model.decoder_path`, a checkpoint (`--ckpt_path`), or training data to train one')

    def on_fit_start(self) -> None:
        self._require_model()

    def on_validation_start(self) -> None:
        self._require_model()

    def on_test_start(self) -> None:
        self._require_model()

    def on_predict_start(self) -> None:
        self._require_model()

    def train(self, mode: bool = True):
        """Frozen parts stay in eval mode (no dropout / drop path) while the rest trains."""
        super().train(mode)
        if mode and self.model is not None:
            for name, module in self.parts().items():
                if name not in self.hparams.trainable:
                    module.eval()
        return self

    # -- optimisation --------------------------------------------------------------------------------------------
    def optimizer_params(self) -> List[Dict[str, Any]]:
        """One lr per part (encoder, projector, decoder), no weight decay on 1-D tensors (biases, norms);
        frozen parts are left out."""
        hp = self.hparams
        rates = {'encoder': hp.lr_encoder or hp.lr, 'projector': hp.lr, 'decoder': hp.lr_decoder or hp.lr}
        groups = []
        for name, module in self.parts().items():
            params = [p for p in module.parameters() if p.requires_grad]
            groups += [{'params': [p for p in params if p.ndim > 1], 'lr': rates[name], 'name': name},
                       {'params': [p for p in params if p.ndim <= 1], 'lr': rates[name], 'weight_decay': 0.0,
                        'name': f'{name}_no_decay'}]
        return [group for group in groups if group['params']]

    # -- batches -------------------------------------------------------------------------------------------------
    def batch_inputs(self, batch: Dict[str, List[Any]], training: bool) -> Dict[str, torch.Tensor]:
        """A `collate_records` batch (caption and/or VQA records) -> right-padded model inputs with labels.

        Training uses `texts_per_image` of a caption record's captions or a grouped VQA record's questions, drawn
        at random, each image encoded once for all of them; evaluation uses the first caption / question."""
        prompts, targets, images = [], [], []
        for i, image in enumerate(batch['image']):
            for prompt, target in self._record_texts(batch, i, training):
                prompts.append(prompt)
                targets.append(target)
                images.append(image)
        inputs = self.processor(prompts, images, targets, padding_side='right', truncation=self.hparams.truncation,
                                share_images=True)
        return {key: value.to(self.device) for key, value in inputs.items()}

    def _record_texts(self, batch: Dict[str, List[Any]], i: int, training: bool) -> List[Tuple[str, str]]:
        """(prompt, target) pairs of record i: captions, grouped questions ('qa') or its one question."""
        captions, grouped = batch.get('captions'), batch.get('qa')
        if captions is not None and captions[i] is not None:
            pairs = [(caption_prompt(), target_text(caption)) for caption in captions[i]]
        elif grouped is not None and grouped[i] is not None:
            pairs = [(vqa_prompt(qa['question']), target_text(qa['answer'])) for qa in grouped[i]]
        else:
            return [(vqa_prompt(batch['question'][i]), target_text(batch['answer'][i]))]
        if not training:
            return pairs[:1]
        count = self.hparams.texts_per_image or len(pairs)
        return random.sample(pairs, min(count, len(pairs)))

    def forward(self, **inputs: torch.Tensor):
        return self.model(**inputs)

    def training_step(self, batch: Dict[str, Any], batch_idx: int) -> Optional[torch.Tensor]:
        if not batch['image']:
            return None
        loss = self.model(**self.batch_inputs(batch, training=True)).loss
        self.log('train/loss', loss, prog_bar=True, batch_size=len(batch['image']))
        return loss

    # -- generation ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate_for(self, batch: Dict[str, Any]) -> List[str]:
        """Greedy (or beam) answers to each record's prompt: a caption or the answer to its question."""
        captions = batch.get('captions') or [None] * len(batch['image'])
        prompts = [caption_prompt() if caps is not None else vqa_prompt(batch['question'][i])
                   for i, caps in enumerate(captions)]
        inputs = self.processor(prompts, batch['image'], padding_side='left')
        inputs = {key: value.to(self.device) for key, value in inputs.items()}
        output = self.model.generate(**inputs, max_new_tokens=self.hparams.max_new_tokens,
                                     num_beams=self.hparams.num_beams, do_sample=False,
                                     synced_gpus=self._parameters_sharded())
        return self.processor.decode(output, inputs['input_ids'].shape[1])

    def _parameters_sharded(self) -> bool:
        """Whether the weights are sharded over the ranks (FSDP2, DeepSpeed ZeRO-3): every forward is then a
        collective, so a rank whose sequences are done keeps stepping until all ranks are (`synced_gpus`)."""
        trainer = self._trainer
        if trainer is None or trainer.world_size < 2:
            return False
        from lightning.pytorch.strategies import DeepSpeedStrategy

        strategy = trainer.strategy
        return self.device_mesh is not None or (isinstance(strategy, DeepSpeedStrategy) and strategy.zero_stage_3)

    def _evaluation_step(self, batch: Dict[str, Any], split: str) -> None:
        if not batch['image']:
            return
        loss = self.model(**self.batch_inputs(batch, training=False)).loss
        self.log(f'{split}/loss', loss, sync_dist=True, batch_size=len(batch['image']))
        texts = self.generate_for(batch)
        store = self._outputs.setdefault(split, {'captions': {}, 'references': {}, 'answers': {}, 'gt': {},
                                                 'types': {}})
        captions = batch.get('captions') or [None] * len(texts)
        for i, text in enumerate(texts):
            if captions[i] is not None:
                store['captions'][int(batch['image_id'][i])] = text
                store['references'][int(batch['image_id'][i])] = captions[i]
            else:
                qid = int(batch['question_id'][i])
                store['answers'][qid], store['gt'][qid] = text, batch['answers'][i]
                store['types'][qid] = batch['answer_type'][i]

    def validation_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self._evaluation_step(batch, 'val')

    def test_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self._evaluation_step(batch, 'test')

    def on_validation_epoch_end(self) -> None:
        self._log_scores('val')

    def on_test_epoch_end(self) -> None:
        self._log_scores('test')

    def _log_scores(self, split: str) -> None:
        from vlm.evaluation.caption_metrics import evaluate_captions
        from vlm.evaluation.vqa_accuracy import vqa_accuracy

        store = _gather(self._outputs.pop(split, {}))
        if self.trainer.sanity_checking or not store:
            return
        scores: Dict[str, float] = {}
        if store['captions']:
            metrics = evaluate_captions(store['references'], store['captions'])
            scores.update({key: metrics[key] for key in ('BLEU4', 'CIDEr', 'ROUGE_L')})
        if store['answers']:
            scores.update(vqa_accuracy(store['gt'], store['answers'], store['types']))
        # every rank holds the gathered predictions, so every rank logs the same scores (checkpoint callbacks
        # on all ranks see the monitored metric and agree)
        self.log_dict({f'{split}/{key}': float(value) for key, value in scores.items()})
        if self.trainer.is_global_zero:
            print(f'{split}: ' + '  '.join(f'{key} {value:.4f}' for key, value in scores.items()))
            if store['captions']:
                image_id = next(iter(store['captions']))
                print(f"  e.g. image {image_id}: {store['captions'][image_id]!r}  (ref: {store['references'][image_id][0]!r})")

    # -- predict -------------------------------------------------------------------------------------------------
    def predict_step(self, batch: Dict[str, Any], batch_idx: int) -> List[Dict[str, Any]]:
        if not batch['image']:
            return []
        texts = self.generate_for(batch)
        captions = batch.get('captions') or [None] * len(texts)
        return [{'image_id': int(batch['image_id'][i]), 'caption': text} if captions[i] is not None
                else {'question_id': int(batch['question_id'][i]), 'answer': text} for i, text in enumerate(texts)]

    def write_predictions(self, items: List[Dict[str, Any]], output_dir: Path) -> Path:
        """COCO caption results (`captions_results.json`) and VQAv2 results (`vqa_results.json`)."""
        for name, key in (('captions_results.json', 'caption'), ('vqa_results.json', 'answer')):
            records = [item for item in items if key in item]
            if records:
                (output_dir / name).write_text(json.dumps(records))
                print(f'wrote {len(records)} {key}s to {output_dir / name}')
        return output_dir


def _gather(store: Dict[str, Dict[Any, Any]]) -> Dict[str, Dict[Any, Any]]:
    """Merge every rank's predictions (keyed by image / question id, so nothing counts twice)."""
    merged: Dict[str, Dict[Any, Any]] = {}
    for one in gather_objects(store):
        for key, values in (one or {}).items():
            merged.setdefault(key, {}).update(values)
    return merged


def _tokenizer_to_files(tokenizer) -> Dict[str, str]:
    """A tokenizer as {file name: text}: what `save_pretrained` writes, so a checkpoint can carry it."""
    with tempfile.TemporaryDirectory() as directory:
        tokenizer.save_pretrained(directory)
        return {path.name: path.read_text(encoding='utf-8') for path in Path(directory).iterdir() if path.is_file()
                and path.suffix in ('.json', '.txt', '.jinja')}


def _read_checkpoint(path: str) -> Dict[str, Any]:
    if not Path(path).is_file():
        raise FileNotFoundError(f'init_checkpoint {path} does not exist')
    return torch.load(path, map_location='cpu', weights_only=True)


def _tokenizer_files_of(checkpoint: Dict[str, Any], path: str) -> Dict[str, str]:
    """The tokenizer files stored in a VisionLanguageTask checkpoint (read from `path`)."""
    files = checkpoint.get(TOKENIZER_KEY)
    if not files:
        raise ValueError(f'{path}: no tokenizer inside (was it written by VisionLanguageTask?)')
    return files


def _tokenizer_from_files(files: Dict[str, str]):
    with tempfile.TemporaryDirectory() as directory:
        for name, text in files.items():
            (Path(directory) / name).write_text(text, encoding='utf-8')
        return load_tokenizer(directory)
