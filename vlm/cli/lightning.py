"""`vlm fit | validate | test | predict --config FILE`: Lightning's CLI with vlm's defaults."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

import lightning as L
import torch
from lightning.pytorch.cli import LightningCLI
from lightning_utilities.core.imports import RequirementCache

from vlm.callbacks.prediction_writer import PredictionWriter
from vlm.encoder import encoder_normalization
from vlm.tasks.checkpoint_migration import migrate_hparams

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

    def before_instantiate_classes(self) -> None:
        """`trainer.enable_progress_bar: false` also drops the default rich progress bar."""
        trainer = (self.config[self.subcommand] if self.subcommand else self.config).trainer
        if trainer.enable_progress_bar is False and trainer.callbacks:
            trainer.callbacks = [c for c in trainer.callbacks
                                 if not str(getattr(c, 'class_path', '')).endswith('ProgressBar')]

    def add_arguments_to_parser(self, parser) -> None:
        parser.set_defaults(configurable_trainer_defaults())
        # a model class without these arguments (e.g. the vision-language model) simply does not receive them
        parser.link_arguments('data.num_classes', 'model.init_args.num_classes', apply_on='instantiate')
        parser.link_arguments('data.class_names', 'model.init_args.class_names', apply_on='instantiate')
        # the images are normalised as the model's encoder expects (timm's pretrained config): named once
        parser.link_arguments('model.init_args.encoder', 'data.init_args.normalization', apply_on='parse',
                              compute_fn=encoder_normalization)

    def _parse_ckpt_path(self) -> None:
        """With `--ckpt_path`, Lightning fills the model's arguments from the checkpoint's stored hyperparameters;
        those of a vlm 0.1 checkpoint are renamed first (`migrate_hparams`)."""
        subcommand = self.config.get('subcommand')
        ckpt_path = self.config[subcommand].get('ckpt_path') if subcommand else None
        if not (ckpt_path and Path(ckpt_path).is_file()):
            return
        checkpoint = torch.load(ckpt_path, weights_only=True, map_location='cpu')
        hparams = checkpoint.get('hyper_parameters') or {}
        class_path = hparams.get('_class_path')
        hparams = migrate_hparams(hparams)
        if not hparams:
            return
        model = {'class_path': class_path, 'init_args': hparams} if class_path else {'init_args': hparams}
        self.config = self.parser.parse_object({subcommand: {'model': model}}, self.config)


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
