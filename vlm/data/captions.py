"""COCO captions (`captions_*.json`): images with their reference captions."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

from torch.utils.data import Dataset

from .coco_json import CocoIndex
from .errors import DataError, SkipCounter, SkippedSample
from .images import load_image_tensor


class CocoCaptions(Dataset):
    """Item: {'image': (3, H, W) uint8 tv_tensors.Image (after `transform`), 'captions': [str, ...], 'image_id'}.

    Images without any caption are left out (nothing to learn or score).
    """

    def __init__(
            self,
            images_dir: Union[str, Path],
            annotation_file: Union[str, Path],
            transform: Optional[Callable] = None,
            skip_bad_samples: bool = False,
    ) -> None:
        self.images_dir = Path(images_dir)
        self.skipped = SkipCounter()
        self.skip_bad_samples = skip_bad_samples
        self.index = CocoIndex(annotation_file, kind='captions', skip_counter=self.skipped if skip_bad_samples else None)
        self.image_ids: List[int] = [i for i in self.index.image_ids if self.index.annotations[i]]
        self.transform = transform

    def captions(self, image_id: int) -> List[str]:
        return [a['caption'].strip() for a in self.index.annotations[image_id]]

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, i: int) -> Union[Dict[str, Any], SkippedSample]:
        image_id = self.image_ids[i]
        try:
            image = load_image_tensor(self.images_dir / self.index.images[image_id]['file_name'])
        except DataError as error:
            if not self.skip_bad_samples:
                raise
            return SkippedSample.of(error)
        if self.transform is not None:
            image = self.transform(image)
        return {'image': image, 'captions': self.captions(image_id), 'image_id': image_id}
