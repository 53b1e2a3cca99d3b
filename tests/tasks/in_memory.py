"""An in-memory classification datamodule and a recording callback, for configs in the tests
(`class_path: tests.tasks.in_memory.InMemoryClassificationData`), and a tiny classifier config run through the
real `VlmCLI`."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Tuple

import lightning as L
import torch
import yaml
from torch.utils.data import DataLoader, Dataset

from vlm.cli.lightning import VlmCLI
from vlm.data.collate import collate_classification


class RandomImages(Dataset):
    """`n` seeded random images (3, size, size) with labels in [0, num_classes): the same tensors every time."""

    def __init__(self, n: int, size: int, num_classes: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.randn(n, 3, size, size, generator=generator)
        self.labels = torch.randint(0, num_classes, (n,), generator=generator)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> Tuple[torch.Tensor, torch.Tensor, str]:
        return self.images[i], self.labels[i], f'img{i}'


class InMemoryClassificationData(L.LightningDataModule):
    """Train and val loaders over fixed random images, in a fixed order (no shuffling, no augmentation), so two
    runs see exactly the same samples whatever their batch size."""

    def __init__(self, n: int = 16, size: int = 32, num_classes: int = 3, batch_size: int = 4, seed: int = 0) -> None:
        super().__init__()
        self.num_classes, self.batch_size = num_classes, batch_size
        self.class_names = [f'class{i}' for i in range(num_classes)]
        self.train_set = RandomImages(n, size, num_classes, seed)
        self.val_set = RandomImages(max(n // 2, 1), size, num_classes, seed + 1)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=False, collate_fn=collate_classification)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size, collate_fn=collate_classification)


class RecordTraining(L.Callback):
    """Records, per training step, the loss and the dtypes the encoder's first MLP computes in, and the lr."""

    def __init__(self) -> None:
        self.losses: List[float] = []
        self.activation_dtypes: List[torch.dtype] = []
        self.parameter_dtypes: List[torch.dtype] = []
        self.lrs: List[float] = []

    def on_fit_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        fc1 = pl_module.encoder_module().blocks[0].mlp.fc1
        fc1.register_forward_hook(lambda module, args, output: self.activation_dtypes.append(output.dtype))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Dict[str, Any], batch: Any,
                           batch_idx: int) -> None:
        self.losses.append(float(outputs['loss']))
        self.parameter_dtypes.append(pl_module.encoder_module().blocks[0].mlp.fc1.weight.dtype)
        self.lrs.append(trainer.optimizers[0].param_groups[0]['lr'])


def write_classifier_config(tmp_path: Path, name: str, encoder_kwargs: Dict[str, Any], trainer: Dict[str, Any],
                            model: Dict[str, Any], n: int) -> Path:
    """A `vlm fit` YAML: an ImageClassifier (vlm ViT-Ti with `encoder_kwargs`, lr 1e-3, + `model`) on `n`
    in-memory images, one CPU process, a CSV logger under tmp_path/runs/name, + `trainer`."""
    config = {
        'seed_everything': 0,
        'trainer': {'accelerator': 'cpu', 'devices': 1, 'enable_progress_bar': False, 'enable_model_summary': False,
                    'num_sanity_val_steps': 0,
                    'logger': {'class_path': 'lightning.pytorch.loggers.CSVLogger',
                               'init_args': {'save_dir': str(tmp_path / 'runs'), 'name': name}}, **trainer},
        'model': {'class_path': 'vlm.tasks.ImageClassifier', 'init_args': {
            'encoder': 'vlm_vit_tiny_patch16_rope_rms', 'encoder_kwargs': encoder_kwargs,
            **model, 'optimization': {'lr': 1e-3, **model.get('optimization', {})}}},
        'data': {'class_path': 'tests.tasks.in_memory.InMemoryClassificationData', 'init_args': {'n': n}},
    }
    path = tmp_path / f'{name}.yaml'
    path.write_text(yaml.safe_dump(config))
    return path


def fit(config: Path, *overrides: str) -> VlmCLI:
    """`vlm fit --config config *overrides` through the real CLI class, from scratch; the CLI for inspection."""
    cli = VlmCLI(args=['--config', str(config), *overrides], run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=None)
    return cli
