"""What every vlm datamodule shares: paths under a root, shapes generation on demand, loaders, skip counts."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Union

import lightning as L
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from vlm.errors import DataError
from vlm.io.images import MAX_PIXELS_VARIABLE
from vlm.io.progress import progress_bar

from .sampling import EpochShuffle, Reseeded
from .transforms import IMAGENET, Stats

log = logging.getLogger(__name__)


def ensure_shapes(shapes_root: Union[str, Path], options: Optional[Dict[str, Any]] = None) -> bool:
    """Generate the embedded shapes dataset at `shapes_root` unless it is already there; True if generated."""
    shapes_root = Path(shapes_root)
    if (shapes_root / 'shapes_meta.json').is_file():
        return False
    from .shapes import generate_shapes  # imported on demand: only needed the first time

    if shapes_root.exists() and (not shapes_root.is_dir() or any(shapes_root.iterdir())):
        raise DataError(shapes_root, 'data.shapes_root holds other files and no shapes dataset (no shapes_meta.json): '
                                     'give an empty or new folder, where vlm generates the dataset')
    log.warning("shapes dataset not found at %s: generating it (%s)", shapes_root, options or 'default sizes')
    with progress_bar(f'generating {shapes_root}') as advance:
        generate_shapes(shapes_root, **(options or {}), progress=advance)
    log.warning("generated the shapes dataset at %s", shapes_root)
    return True


class VlmDataModule(L.LightningDataModule):
    """Base datamodule.

    root: the dataset root; relative paths given to subclasses are resolved under it.
    shapes_root: if set, the embedded shapes dataset is generated there first when missing (so a shapes
        config works on a fresh clone); `shapes_options` are passed to the generator (sizes, seed).
    skip_bad_samples: skip (and count, and report once per epoch) bad images and annotations instead of failing.
    normalization: (mean, std) the images are normalised with; `vlm fit` links it from the model's encoder
        (`vlm.encoder.encoder_normalization`, timm's pretrained config), so a config names the encoder once;
        ImageNet's by default. (The detectors normalise inside the model and ignore it.)
    max_image_pixels: refuse (or, with skip_bad_samples, skip and count) images whose header declares more pixels
        (decompression bombs); PIL's 89.5 M by default. Set through the environment variable
        VLM_MAX_IMAGE_PIXELS, which the loader workers inherit.
    Subclasses set `collate_fn` (or `collate_for(split)`) and fill `self.datasets[split]` in `setup`.
    """

    collate_fn: Callable = staticmethod(default_collate)

    def __init__(
            self,
            root: str,
            batch_size: int = 32,
            eval_batch_size: Optional[int] = None,
            num_workers: int = 2,
            skip_bad_samples: bool = False,
            shapes_root: Optional[str] = None,
            shapes_options: Optional[Dict[str, Any]] = None,
            normalization: Optional[Stats] = None,
            max_image_pixels: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.skip_bad_samples = skip_bad_samples
        self.shapes_root = shapes_root
        self.shapes_options = shapes_options
        self.stats: Stats = (tuple(normalization[0]), tuple(normalization[1])) if normalization else IMAGENET
        self.datasets: Dict[str, Dataset] = {}
        if max_image_pixels is not None:
            if max_image_pixels <= 0:
                raise DataError('data.max_image_pixels', f'must be a positive number of pixels, got {max_image_pixels}')
            os.environ[MAX_PIXELS_VARIABLE] = str(max_image_pixels)

    def path(self, relative: Union[str, Path]) -> Path:
        relative = Path(relative)
        return relative if relative.is_absolute() else self.root / relative

    def ensure_data(self) -> None:
        """Generate shapes if configured and missing; then the root must exist."""
        if self.shapes_root is not None:
            ensure_shapes(self.shapes_root, self.shapes_options)
        if not self.root.exists():
            raise DataError(self.root, 'data root not found (set data.root to where the dataset lies)')

    def prepare_data(self) -> None:
        self.ensure_data()

    def collate_for(self, split: str) -> Callable:
        """How a split's samples become batches (the subclass's `collate_fn` unless it says otherwise)."""
        return self.collate_fn

    def loader(self, split: str, train: bool = False) -> DataLoader:
        """The DataLoader of a split set up by `setup`, batched by `collate_for(split)`. Training order and
        augmentation follow (seed, epoch, index) (`vlm.data.sampling`): a resumed run repeats an uninterrupted one."""
        dataset = self.datasets[split]
        sampler = None
        if train:
            seed = int(os.environ.get('PL_GLOBAL_SEED', 0))  # `seed_everything` of the run (vlm fit: 0 by default)
            dataset, sampler = Reseeded(dataset, seed), self.train_sampler(dataset, seed)
        return DataLoader(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            sampler=sampler,
            drop_last=train and len(sampler) > self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=self.collate_for(split),
        )

    def train_sampler(self, dataset: Dataset, seed: int) -> Sampler:
        """The training order: every sample once an epoch, shuffled by (seed, epoch)."""
        return EpochShuffle(len(dataset), seed, self._trainer_epoch)

    def _trainer_epoch(self) -> Optional[int]:
        return self.trainer.current_epoch if self.trainer is not None else None

    def train_dataloader(self) -> DataLoader:
        return self.loader('train', train=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader('val')

    def test_dataloader(self) -> DataLoader:
        return self.loader('test')

    def predict_dataloader(self) -> DataLoader:
        return self.loader('predict')

    def report_load_skips(self) -> None:
        """Annotations dropped while reading (skip_bad_samples): one warning per split."""
        for split, dataset in self.datasets.items():
            for part in getattr(dataset, 'datasets', [dataset]):  # a ConcatDataset reports each part
                counter = getattr(part, 'skipped', None)
                if counter is not None:
                    counter.report(f"{split} annotations")
