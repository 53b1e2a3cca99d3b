"""Training the vision-language model for captioning, VQA and conversations (separately or mixed), with
generation-based validation: BLEU-4 / CIDEr / ROUGE-L for captions, VQAv2 accuracy for answers, exact-match accuracy
of every assistant turn of a conversation."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from lightning.pytorch.callbacks import BaseFinetuning

from vlm.evaluation.tag_accuracy import TagAccuracy
from vlm.evaluation.text_metrics import TEXT_METRICS, build_text_metrics
from vlm.io.checkpoints import read_checkpoint
from vlm.language.build import build_vision_language_model
from vlm.language.checkpoint import (
    TOKENIZER_KEY,
    checkpoint_tokenizer_files,
    load_model_weights,
    tokenizer_from_files,
    tokenizer_to_files,
)
from vlm.language.collator import VisionLanguageCollator
from vlm.language.lora import LoraSettings, add_lora, count_parameters, merged
from vlm.language.records import Reference, check_packing
from vlm.language.tagger import TagLogits, tag_loss
from vlm.language.tags import TagSettings
from vlm.language.tokenizer import load_tokenizer, train_bpe_tokenizer

from .base import CompileOptions, VlmTask
from .interfaces import TakesCollators, TextCorpus
from .optimization import Optimization

PARTS = ('encoder', 'projector', 'tagger', 'decoder')


class VisionLanguageTask(VlmTask):
    """Encoder -> projector -> Llama decoder, trained on caption, VQA and / or conversation records
    (`VisionLanguageDataModule`),
    batched by `VisionLanguageCollator`s that the task hands the datamodule (tokenisation and the loss mask run in
    the DataLoader workers; the steps only compute).

    Loss: next-token cross-entropy on the assistant's tokens (caption / answer and the end of its turn) only.
    tokenizer: a local Hugging Face tokenizer directory; None trains a byte-level BPE of `tokenizer_vocab_size`
        on the training captions and questions (it travels inside every checkpoint and export).
    decoder: `LlamaConfig` kwargs for a new decoder; decoder_path: a local pretrained Llama directory instead
        (its tokenizer and chat template are used when `tokenizer` is None).
    encoder_weights: initial encoder weights (.safetensors, .pth, or any vlm Lightning checkpoint).
    init_checkpoint: initial weights of the whole model from an earlier VisionLanguageTask checkpoint (stage 2
        starts from stage 1's); unlike `--ckpt_path` it restores no optimizer or step. Without `tokenizer` /
        `decoder_path` the checkpoint's own tokenizer is used; a different one is refused.
    tags: the cell tagger (`vlm.language.tags.TagSettings`: vocabularies, source, indices, mean_rgb, hidden_size,
        min_cover, loss_weight): its tag tokens, words per cell in the decoder's own embeddings, are added to the
        projector's. It learns from records that carry their image's objects (the datamodule's 'instances' task,
        or `attach_instances`), with `loss_weight` times its loss beside the text loss; validation logs
        `val/tags/<field>` (accuracy of the words on object cells), `val/tags/objects` (the lowest of them),
        `val/tags/centre_f1` and `val/tags/count`. Stage 1 of a tagged recipe trains the tagger alone (`trainable:
        [tagger]` on 'instances'); stage 2 starts from its checkpoint with `init_checkpoint`.
    trainable: which parts learn all their weights: ('projector',) is LLaVA stage 1, ('projector', 'decoder')
        stage 2; the rest are frozen (Lightning's `BaseFinetuning.freeze`: requires_grad False, eval mode) unless
        they have LoRA adapters. lr_encoder / lr_decoder: their learning rates (default `optimization.lr`, which
        the projector uses; a LoRA part's adapters use its rate).
    lora: LoRA adapters through peft (`vlm.language.lora.LoraSettings`: parts, r, alpha, dropout, target_modules):
        a part with adapters learns only them; they are merged into the weights at export.
    projector: 'mlp' or 'vocabulary' (image tokens as soft look-ups in the decoder's word embeddings, which a
        pretrained decoder reads from the first step; `vlm.language.projector.soft_vocabulary_lookup`).
    texts_per_image: how many of an image's captions (or, with the datamodule's `group_by_image`, questions) one
        training step learns, drawn without replacement; the image is encoded once for all of them. 0: all.
    packing: 'sequences' (one sequence per text) or 'turns' (an image's chosen questions as one multi-turn
        conversation; see `VisionLanguageCollator`).
    activation_checkpointing: recompute encoder and decoder blocks in the backward pass (less memory, ~30% slower).
    Under `ModelParallelStrategy` (FSDP2) every encoder block, decoder layer and the whole model are sharded with
    `fully_shard` over the data-parallel mesh in `configure_model`.
    monitor / monitor_mode: the checkpointed metric, 'val/CIDEr', 'val/vqa_acc', 'val/chat_acc' (conversation
        turns), 'val/loss', or one of a registered metric's; and whether higher ('max') or lower ('min') is better
        (default: 'min' for a loss, else 'max').
    max_new_tokens / num_beams: generation at validation, test and predict.
    """

    encoder_path = 'model.encoder'

    def __init__(
            self,
            encoder: str = 'vlm_vit_small_patch16_rope_rms',
            encoder_kwargs: Optional[Dict[str, Any]] = None,
            encoder_weights: Optional[str] = None,
            init_checkpoint: Optional[str] = None,
            decoder: Optional[Dict[str, Any]] = None,
            decoder_path: Optional[str] = None,
            tokenizer: Optional[str] = None,
            tokenizer_vocab_size: int = 1024,
            pixel_shuffle: int = 1,
            projector_hidden_size: Optional[int] = None,
            projector: str = 'mlp',
            tags: Optional[TagSettings] = None,
            image_size: int = 224,
            trainable: Sequence[str] = PARTS,
            lora: Optional[LoraSettings] = None,
            lr_encoder: Optional[float] = None,
            lr_decoder: Optional[float] = None,
            truncation: bool = False,
            texts_per_image: int = 1,
            packing: str = 'sequences',
            activation_checkpointing: bool = False,
            monitor: str = 'val/CIDEr',
            monitor_mode: Optional[str] = None,
            max_new_tokens: int = 32,
            num_beams: int = 1,
            optimization: Optional[Optimization] = None,
            compile_encoder: CompileOptions = False,
    ) -> None:
        super().__init__(optimization, compile_encoder)
        self.save_task_hyperparameters()
        unknown = set(trainable) - set(PARTS)
        if unknown:
            raise ValueError(f'trainable parts must be among {PARTS}, got {sorted(unknown)}')
        self.lora = LoraSettings.of(lora)
        self.tags = TagSettings.of(tags)
        if 'tagger' in trainable and self.tags is None and tuple(trainable) != PARTS:
            raise ValueError("trainable names 'tagger' but the model has no tags")
        both = set(trainable) & set(self.lora.parts if self.lora else ())
        if both:
            raise ValueError(f'{sorted(both)}: a part learns all its weights (trainable) or LoRA adapters, not both')
        check_packing(texts_per_image, packing)
        if monitor_mode not in (None, 'min', 'max'):
            raise ValueError(f"monitor_mode must be 'min' or 'max' (or None: 'min' for a loss), got {monitor_mode!r}")
        self.monitor = monitor
        self.monitor_mode = monitor_mode or ('min' if monitor.endswith('loss') else 'max')
        self.model = None
        self.processor = None
        self.tokenizer_files: Dict[str, str] = {}
        self.text_metrics = build_text_metrics()  # by name: 'captions', 'vqa', 'conversations', any registered
        self.tag_accuracy = TagAccuracy(self.tags.fields) if self.tags else None

    # -- building ------------------------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        """Build the model once the tokenizer is known: the given directory, the decoder's directory, or a BPE
        trained on the training texts (at any stage, so a sharded FSDP2 checkpoint can be restored into it).
        Without any, the model is built from the tokenizer inside the checkpoint when Lightning restores it. Then
        hand the datamodule its collators."""
        if self.model is None:
            if self.hparams.tokenizer or self.hparams.decoder_path:
                self.build(load_tokenizer(self.hparams.tokenizer or self.hparams.decoder_path))
            elif self.hparams.init_checkpoint:
                # the earlier stage's token ids: a BPE trained anew on this stage's texts would scramble them
                path = self.hparams.init_checkpoint
                self.build(tokenizer_from_files(checkpoint_tokenizer_files(read_checkpoint(path), path)))
            elif isinstance(self.trainer.datamodule, TextCorpus):
                # deterministic: the same training texts give the tokenizer stored in this run's checkpoints
                self.build(train_bpe_tokenizer(self.trainer.datamodule.training_texts(),
                                               self.hparams.tokenizer_vocab_size))
        self._hand_collators()

    def _hand_collators(self) -> None:
        datamodule = getattr(self._trainer, 'datamodule', None) if self._trainer is not None else None
        if self.processor is not None and isinstance(datamodule, TakesCollators):
            datamodule.set_collate_fns(self.collator(training=True), self.collator(training=False))

    def collator(self, training: bool) -> VisionLanguageCollator:
        """What turns this task's records into model inputs, in the loader workers."""
        hp = self.hparams
        return VisionLanguageCollator(self.processor, training, hp.texts_per_image, hp.packing, hp.truncation)

    def build(self, tokenizer) -> None:
        hp = self.hparams
        self.model, self.processor = build_vision_language_model(
            tokenizer, encoder=hp.encoder, encoder_kwargs=hp.encoder_kwargs, decoder=hp.decoder,
            decoder_path=hp.decoder_path, pixel_shuffle=hp.pixel_shuffle,
            projector_hidden_size=hp.projector_hidden_size,
            image_size=hp.image_size, encoder_weights=hp.encoder_weights, projector=hp.projector, tags=self.tags)
        self.tokenizer_files = tokenizer_to_files(tokenizer)
        if hp.init_checkpoint:
            load_model_weights(self.model, self.processor.tokenizer, hp.init_checkpoint)
        adapted = self.lora.parts if self.lora else ()
        if hp.activation_checkpointing:
            self.model.encoder.set_grad_checkpointing(True)
            self.model.language_model.activation_checkpointing_enable({'use_reentrant': False})
        if 'encoder' in adapted:  # peft freezes the part's own weights
            self.model.encoder = add_lora(self.model.encoder, self.lora, 'encoder')
        if 'decoder' in adapted:
            self.model.language_model = add_lora(self.model.language_model, self.lora, 'decoder')
        self.maybe_compile_encoder()
        BaseFinetuning.freeze([module for name, module in self.parts().items()
                               if name not in hp.trainable and name not in adapted], train_bn=False)
        self._hand_collators()

    def exportable_model(self):
        """The model with its LoRA adapters merged into the weights (a plain `VisionLanguageModel`, no peft)."""
        self.model.encoder = merged(self.model.encoder)
        self.model.language_model = merged(self.model.language_model)
        return self.model

    def configure_model(self) -> None:
        """FSDP2 under Lightning's `ModelParallelStrategy`: shard block by block, then the rest."""
        mesh = self.device_mesh
        if mesh is None or self.model is None:
            return
        from torch.distributed.fsdp import fully_shard

        data_parallel = mesh['data_parallel']
        for block in [*self.model.encoder.blocks, *self.model.get_decoder().layers]:
            fully_shard(block, mesh=data_parallel)
        fully_shard(self.model, mesh=data_parallel)

    def parts(self) -> Dict[str, torch.nn.Module]:
        parts = {'encoder': self.model.encoder, 'projector': self.model.projector,
                 'decoder': self.model.language_model}
        if self.model.tagger is not None:
            parts['tagger'] = self.model.tagger
        return parts

    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint[TOKENIZER_KEY] = self.tokenizer_files

    def on_load_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        """(Re)build the model with the checkpoint's own tokenizer before its weights are loaded."""
        files = checkpoint_tokenizer_files(checkpoint, 'this checkpoint')
        if self.model is None or files != self.tokenizer_files:
            self.build(tokenizer_from_files(files))
        super().on_load_checkpoint(checkpoint)

    def _require_model(self) -> None:
        if self.model is None:
            raise ValueError('VisionLanguageTask has no tokenizer: give `model.tokenizer` (a directory), '
                             '`model.decoder_path`, a checkpoint (`--ckpt_path`), or training data to train one')

    def on_fit_start(self) -> None:
        self._require_model()
        self.train()  # a pretrained decoder arrives in eval mode (from_pretrained); the frozen parts stay there
        counts = {name: count_parameters([module]) for name, module in self.parts().items()}
        self.print('trainable parameters: ' + ', '.join(
            f'{name} {trainable / 1e6:.3f} M of {total / 1e6:.3f} M' for name, (trainable, total) in counts.items()))

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
                if name not in self.hparams.trainable and name not in (self.lora.parts if self.lora else ()):
                    module.eval()
        return self

    # -- optimisation --------------------------------------------------------------------------------------------
    def optimizer_params(self) -> List[Dict[str, Any]]:
        """One lr per part (encoder, projector, decoder), no weight decay on 1-D tensors (biases, norms);
        frozen parts are left out."""
        hp, lr = self.hparams, self.optimization.lr
        rates = {'encoder': hp.lr_encoder or lr, 'projector': lr, 'tagger': lr, 'decoder': hp.lr_decoder or lr}
        groups = []
        for name, module in self.parts().items():
            params = [p for p in module.parameters() if p.requires_grad]
            groups += [{'params': [p for p in params if p.ndim > 1], 'lr': rates[name], 'name': name},
                       {'params': [p for p in params if p.ndim <= 1], 'lr': rates[name], 'weight_decay': 0.0,
                        'name': f'{name}_no_decay'}]
        return [group for group in groups if group['params']]

    # -- steps ---------------------------------------------------------------------------------------------------
    def forward(self, **inputs: torch.Tensor):
        return self.model(**inputs)

    def training_step(self, batch: Dict[str, Any], batch_idx: int) -> Optional[torch.Tensor]:
        losses = []
        if 'inputs' in batch:
            output = self.model(**batch['inputs'], labelled_logits_only=True)
            self.log('train/text_loss', output.loss, batch_size=batch['records'])
            losses.append(output.loss)
            losses += self._tag_losses(output.tag_logits, batch['inputs'], 'train')
        if 'tag_inputs' in batch:
            inputs = batch['tag_inputs']
            losses += self._tag_losses(self.model.tag(inputs['pixel_values']), inputs, 'train')
        if not losses:
            return None  # every record of this batch was skipped as bad input
        loss = sum(losses)
        self.log('train/loss', loss, prog_bar=True, batch_size=batch['records'])
        return loss

    def _tag_losses(self, logits: Optional[TagLogits], inputs: Dict[str, torch.Tensor], split: str
                    ) -> List[torch.Tensor]:
        """The weighted tag loss when the tagger has targets and learns (trainable, not an oracle's)."""
        if logits is None or 'tag_centres' not in inputs or not self._tagger_learns():
            return []
        loss = tag_loss(logits, inputs['tag_centres'], inputs['tag_labels'])['loss']
        self.log(f'{split}/tag_loss', loss, batch_size=len(inputs['tag_centres']))
        return [self.tags.loss_weight * loss]

    def _tagger_learns(self) -> bool:
        return 'tagger' in self.hparams.trainable and any(p.requires_grad for p in self.model.tagger.parameters())

    @torch.no_grad()
    def generate(self, inputs: Dict[str, torch.Tensor]) -> List[str]:
        """Greedy (or beam) answers to left-padded prompts (a collator's 'generation_inputs')."""
        output = self.model.generate(**inputs, max_new_tokens=self.hparams.max_new_tokens,
                                     num_beams=self.hparams.num_beams, do_sample=False,
                                     synced_gpus=self._parameters_sharded())
        return self.processor.decode_generated(output, inputs['input_ids'].shape[1])

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
        if 'tag_inputs' in batch:
            inputs = batch['tag_inputs']
            self._score_tags(self.model.tag(inputs['pixel_values']), inputs)
        if 'inputs' not in batch:
            return
        output = self.model(**batch['inputs'], labelled_logits_only=True)
        self._score_tags(output.tag_logits, batch['inputs'])
        self.log(f'{split}/loss', output.loss, sync_dist=True, batch_size=batch['records'])
        reference: Reference
        for text, reference in zip(self.generate(batch['generation_inputs']), batch['targets']):
            if reference.metric not in self.text_metrics:
                raise KeyError(f'a {type(reference).__name__} is scored by the text metric {reference.metric!r}, which '
                               f'this task does not have (it has {sorted(self.text_metrics)}): register it in '
                               f'vlm.evaluation.TEXT_METRICS before the task is built (registered now: '
                               f'{sorted(TEXT_METRICS)})')
            reference.score(self.text_metrics[reference.metric], text)

    def _score_tags(self, logits: Optional[TagLogits], inputs: Dict[str, torch.Tensor]) -> None:
        if logits is not None and 'tag_centres' in inputs:
            self.tag_accuracy.update(logits.centre.float().sigmoid(), logits.words, inputs['tag_centres'],
                                     inputs['tag_labels'])

    def validation_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self._evaluation_step(batch, 'val')

    def test_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self._evaluation_step(batch, 'test')

    def on_validation_epoch_end(self) -> None:
        self._log_scores('val')

    def on_test_epoch_end(self) -> None:
        self._log_scores('test')

    def _log_scores(self, split: str) -> None:
        """The text metrics of the epoch: caption scores, VQA accuracy, conversation-turn accuracy and any other
        registered (torchmetrics gathers every rank's predictions, so every rank logs the same values and the
        checkpoint callbacks agree)."""
        metrics = list(self.text_metrics.values())
        scores = {key: value for metric in metrics if self._updated_anywhere(metric)
                  for key, value in metric.compute().items()}
        if self.tag_accuracy is not None and self._updated_anywhere(self.tag_accuracy):
            scores.update({f'tags/{key}': value for key, value in self.tag_accuracy.compute().items()})
            self.tag_accuracy.reset()
        example = self.text_metrics['captions'].examples(1)
        for metric in metrics:
            metric.reset()
        if self.trainer.sanity_checking or not scores:
            return
        self.log_dict({f'{split}/{key}': float(value) for key, value in scores.items()}, sync_dist=True)
        if self.trainer.is_global_zero:
            print(f'{split}: ' + '  '.join(f'{key} {value:.4f}' for key, value in scores.items()))
            for image_id, caption, references in example:
                print(f"  e.g. image {image_id}: {caption!r}  (ref: {references[0]!r})")

    def _updated_anywhere(self, metric: Any) -> bool:
        """Whether any rank updated `metric` this epoch: then every rank computes it (its sync is a collective, so
        a rank that saw none of its records must join rather than skip it)."""
        return bool(self.trainer.strategy.reduce_boolean_decision(metric.update_called, all=False))

    # -- predict -------------------------------------------------------------------------------------------------
    def predict_step(self, batch: Dict[str, Any], batch_idx: int) -> List[Tuple[str, Dict[str, Any]]]:
        """(results file, entry) of each prompt, as its `Reference` writes it."""
        if 'inputs' not in batch:
            return []
        texts = self.generate(batch['generation_inputs'])
        return [(reference.results_file, reference.result(text)) for text, reference in zip(texts, batch['targets'])]

    def write_predictions(self, items: List[Tuple[str, Dict[str, Any]]], output_dir: Path) -> Path:
        """Each results file with its entries: COCO caption results (`captions_results.json`), VQAv2 results
        (`vqa_results.json`), conversation turns (`conversation_results.json`: id, turn, answer), and whatever
        files other record kinds name."""
        files: Dict[str, List[Dict[str, Any]]] = {}
        for name, entry in items:
            files.setdefault(name, []).append(entry)
        for name, entries in files.items():
            (output_dir / name).write_text(json.dumps(entries))
            print(f'wrote {len(entries)} results to {output_dir / name}')
        return output_dir
