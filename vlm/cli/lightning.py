"""`vlm fit | validate | test | predict --config FILE`: Lightning's CLI with vlm's defaults."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import lightning as L
from lightning.pytorch.cli import LightningCLI
from lightning_utilities.core.imports import RequirementCache

from vlm.callbacks.prediction_writer import PredictionWriter
from vlm.encoder import encoder_normalization
from vlm.errors import CheckpointShapeError, DataError, InputError, vlm_error_behind
from vlm.io.checkpoints import read_checkpoint
from vlm.tasks.checkpoint_migration import migrate_hparams

from .checkpoint_args import (
    UNTRAINED,
    as_dict,
    explicit_model_keys,
    is_sharded_checkpoint,
    merge_stored,
    missing_checkpoint,
    newest_last_checkpoint,
    run_folders,
    say,
)
from .quiet import quiet

LIGHTNING_SUBCOMMANDS = ('fit', 'validate', 'test', 'predict')


def configurable_trainer_defaults() -> Dict[str, Any]:
    """CSV logs under runs/ (plus TensorBoard when installed), a rich progress bar and lr monitoring.
    A config's own `trainer.logger` / `trainer.callbacks` replace these."""
    loggers = [{'class_path': 'lightning.pytorch.loggers.CSVLogger', 'init_args': {'save_dir': 'runs', 'name': 'vlm'}}]
    if RequirementCache('tensorboard'):
        loggers.append({'class_path': 'lightning.pytorch.loggers.TensorBoardLogger',
                        'init_args': {'save_dir': 'runs', 'name': 'vlm'}})
    return {
        'trainer.logger': loggers,
        'trainer.callbacks': [
            {'class_path': 'lightning.pytorch.callbacks.RichProgressBar'},
            {'class_path': 'lightning.pytorch.callbacks.LearningRateMonitor', 'init_args': {'logging_interval': 'step'}},
        ],
    }


class VlmCLI(LightningCLI):
    """LightningCLI in subclass mode for model and data (`class_path` / `init_args`), seeded by default,
    the resolved config saved with every run, and `num_classes` linked from the datamodule to the model."""

    def __init__(self, args: Optional[List[str]] = None, run: bool = True) -> None:
        quiet()
        super().__init__(
            model_class=L.LightningModule,
            datamodule_class=L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            seed_everything_default=0,
            save_config_kwargs={'overwrite': True},
            trainer_defaults={'callbacks': [PredictionWriter()]},  # always present: `vlm predict` writes files
            auto_configure_optimizers=False,
            args=args,
            run=run,
        )

    def parse_arguments(self, parser, args) -> None:
        self._raw_args = list(args) if args is not None else sys.argv[1:]
        super().parse_arguments(parser, args)

    def before_instantiate_classes(self) -> None:
        """`trainer.enable_progress_bar: false` also drops the default rich progress bar."""
        trainer = (self.config[self.subcommand] if self.subcommand else self.config).trainer
        if trainer.enable_progress_bar is False and trainer.callbacks:
            trainer.callbacks = [c for c in trainer.callbacks
                                 if not str(getattr(c, 'class_path', '')).endswith('ProgressBar')]

    def instantiate_classes(self) -> None:
        """As Lightning's, but a model or datamodule that refuses its arguments with a vlm error (an unknown
        encoder, a typo in encoder_kwargs, an unsafe checkpoint) reaches `vlm` as that error, not wrapped in
        jsonargparse's report of every Union subtype."""
        try:
            super().instantiate_classes()
        except ValueError as error:
            cause = vlm_error_behind(error)
            if cause is None:
                raise
            raise cause from None

    def add_arguments_to_parser(self, parser) -> None:
        parser.set_defaults(configurable_trainer_defaults())
        # a model class without these arguments (e.g. the vision-language model) simply does not receive them
        parser.link_arguments('data.num_classes', 'model.init_args.num_classes', apply_on='instantiate')
        parser.link_arguments('data.class_names', 'model.init_args.class_names', apply_on='instantiate')
        # the images are normalised as the model's encoder expects (timm's pretrained config): named once
        parser.link_arguments('model.init_args.encoder', 'data.init_args.normalization', apply_on='parse',
                              compute_fn=normalization_for_parsing)

    def _parse_ckpt_path(self) -> None:
        """`--ckpt_path last` is the newest last.ckpt of the run's logger name; a checkpoint's stored
        hyperparameters (renamed from vlm 0.1's by `migrate_hparams`) fill the model's arguments under what the
        command sets explicitly, each override said (`vlm.cli.checkpoint_args`)."""
        subcommand = self.config.get('subcommand')
        if not subcommand:
            return
        command = self.config[subcommand]
        if subcommand != 'fit' and command.get('ckpt_path') in (None, UNTRAINED):
            if command.get('ckpt_path') is None:
                raise InputError(f'vlm {subcommand}: no weights to {subcommand}: give --ckpt_path (a checkpoint of '
                                 f'`vlm fit`, or `last`), or --ckpt_path {UNTRAINED} for the model as its config '
                                 'builds it (pretrained parts, nothing trained)')
            command.ckpt_path = None
            return
        if not command.get('ckpt_path'):
            return
        if command.ckpt_path == 'last':
            found = newest_last_checkpoint(run_folders(command.trainer))
            folders = ', '.join(map(str, run_folders(command.trainer))) or 'the loggers'
            if found is None and subcommand != 'fit':
                raise DataError('--ckpt_path last', f'no last.ckpt under {folders}: nothing to {subcommand}; '
                                                     'train first with `vlm fit`, or give a checkpoint file')
            if found is None:
                say(f'vlm fit: --ckpt_path last: no last.ckpt under {folders}: starting from scratch')
                command.ckpt_path = None
                return
            command.ckpt_path = str(found)
        if not Path(command.ckpt_path).exists():
            raise missing_checkpoint(command.ckpt_path)
        if Path(command.ckpt_path).is_dir():
            if not is_sharded_checkpoint(Path(command.ckpt_path)):
                raise DataError(command.ckpt_path, 'is a folder, not a checkpoint file (nor a sharded FSDP2 / '
                                                   'DeepSpeed checkpoint folder); give its .ckpt file')
            return  # a sharded checkpoint (FSDP2, DeepSpeed): Lightning restores it as it is
        checkpoint = read_checkpoint(command.ckpt_path)
        say(f'vlm {subcommand}: restoring {command.ckpt_path} (epoch {checkpoint.get("epoch")}, global step '
            f'{checkpoint.get("global_step")})')
        stored = checkpoint.get('hyper_parameters') or {}
        configured = getattr(command.model, 'class_path', None)
        if stored.get('_class_path') and configured and not same_class(stored['_class_path'], configured):
            raise CheckpointShapeError(
                f'{command.ckpt_path}: a checkpoint of {stored["_class_path"]}, but the config trains '
                f'{configured}: give a checkpoint of the same task, or the config it was trained with')
        class_path = stored.get('_class_path') or configured
        current = as_dict(getattr(command.model, 'init_args', None))
        hparams, overridden = merge_stored(migrate_hparams(stored), current, explicit_model_keys(self._raw_args))
        if not hparams:
            return
        for change in overridden:
            say(f'vlm {subcommand}: the command overrides the checkpoint\'s {change}')
        self.overridden = overridden
        model = {'class_path': class_path, 'init_args': hparams} if class_path else {'init_args': hparams}
        self.config = self.parser.parse_object({subcommand: {'model': model}}, self.config)

    def _run_subcommand(self, subcommand: str) -> None:
        try:
            super()._run_subcommand(subcommand)
        except CheckpointShapeError as error:
            if not getattr(self, 'overridden', None):
                raise
            raise CheckpointShapeError(f'{error}\n(overridden on the command line: {"; ".join(self.overridden)}; '
                                       'only settings that keep the weights\' shapes can change for a checkpoint)'
                                       ) from None


def normalization_for_parsing(encoder: str):
    """`encoder_normalization` as the config is parsed; an encoder folder it cannot read gets ImageNet's, so that
    building the model (which reads the folder again) reports the fault in one line instead of the parser."""
    try:
        return encoder_normalization(encoder)
    except (DataError, InputError):
        return encoder_normalization(None)


def same_class(first: str, second: str) -> bool:
    """Whether two class paths name one class (vlm.tasks.Detector and vlm.tasks.detection.Detector do)."""
    if first == second:
        return True
    try:
        return _import(first) is _import(second)
    except (ImportError, AttributeError, ValueError):
        return False


def _import(class_path: str) -> Any:
    module, _, name = class_path.rpartition('.')
    return getattr(importlib.import_module(module), name)


def _run(subcommand: str, argv: List[str]) -> int:
    VlmCLI(args=[subcommand, *argv])
    return 0


def fit(argv: List[str]) -> int:
    return _run('fit', argv)


def validate(argv: List[str]) -> int:
    return _run('validate', argv)


def test(argv: List[str]) -> int:
    return _run('test', argv)


def predict(argv: List[str]) -> int:
    return _run('predict', argv)
