"""COCO captions (`captions_*.json`): the one reader of the format (datasets and `vlm evaluate-captions` share it),
and the dataset of images with their reference captions."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Union


from vlm.errors import DataError
from vlm.io.images import load_image_tensor
from vlm.io.json_files import is_id, read_json, require
from vlm.language.records import CaptionRecord

from .skipping import SkipCounter, SkipsBadSamples


@dataclass
class CaptionAnnotations:
    """A captions file read and checked: images by id, and each image's captions in file order."""

    path: Path
    images: Dict[int, Dict[str, Any]] = field(default_factory=dict)
    captions: Dict[int, List[str]] = field(default_factory=dict)


def read_caption_annotations(path: Union[str, Path], skip_counter: Optional[SkipCounter] = None,
                             what: str = 'annotation') -> CaptionAnnotations:
    """A COCO captions JSON (images, annotations with image_id and caption). A missing field, a duplicate image or
    annotation id, a caption of an unknown image, or a caption that is not a non-empty string raises `DataError`
    naming the file, the record and the field; with `skip_counter` a bad annotation is counted and dropped
    instead (a bad image record or top level always raises)."""
    path = Path(path)
    data = read_json(path, what)
    if not isinstance(data, dict):
        raise DataError(path, 'expected a JSON object with images and annotations')
    require(data, ('images', 'annotations'), path, 'top level')
    result = CaptionAnnotations(path)
    for index, image in enumerate(data['images']):
        record = f"images[{index}]"
        if not isinstance(image, dict):
            raise DataError(path, 'expected an object', record=record)
        require(image, ('id',), path, record)
        if not is_id(image['id']):
            raise DataError(path, f"image id is not an integer: {image['id']!r}", record=record, field='id')
        if image['id'] in result.images:
            raise DataError(path, f"duplicate image id {image['id']}", record=record, field='id')
        result.images[image['id']] = image
    annotation_ids = set()
    for index, ann in enumerate(data['annotations']):
        try:
            _check_caption(path, index, ann, result.images, annotation_ids)
        except DataError as error:
            if skip_counter is None:
                raise
            skip_counter.add(error)
            continue
        result.captions.setdefault(ann['image_id'], []).append(ann['caption'])
    return result


def _check_caption(path: Path, index: int, ann: Any, images: Dict[int, Any], annotation_ids: set) -> None:
    if not isinstance(ann, dict):
        raise DataError(path, 'expected an object', record=f'annotations[{index}]')
    record = f"annotations[{index}] (id {ann.get('id', '?')})"
    require(ann, ('image_id', 'caption'), path, record)
    if 'id' in ann:
        if ann['id'] in annotation_ids:
            raise DataError(path, f"duplicate annotation id {ann['id']}", record=record, field='id')
        annotation_ids.add(ann['id'])
    if not is_id(ann['image_id']) or ann['image_id'] not in images:
        raise DataError(path, f"unknown image id {ann['image_id']!r}", record=record, field='image_id')
    if not isinstance(ann['caption'], str):
        raise DataError(path, f"caption is not a string: {ann['caption']!r}", record=record, field='caption')
    if not ann['caption'].strip():
        raise DataError(path, 'empty caption', record=record, field='caption')


def read_caption_references(path: Union[str, Path]) -> Dict[int, List[str]]:
    """Image id -> reference captions, for the images of a captions JSON that have at least one (the ground truth
    of `vlm evaluate-captions`)."""
    return read_caption_annotations(path, what='ground-truth').captions


class CocoCaptions(SkipsBadSamples):
    """Item: a `CaptionRecord` of the image ((3, H, W) uint8 tv_tensors.Image after `transform`), its captions and
    its id.

    Images without any caption are left out (nothing to learn or score); an image record needs a `file_name`.
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
        self.annotations = read_caption_annotations(annotation_file, self.skipped if skip_bad_samples else None)
        self.image_ids: List[int] = sorted(self.annotations.captions)
        for image_id in self.image_ids:
            require(self.annotations.images[image_id], ('file_name',), self.annotations.path, f'image id {image_id}')
        self.transform = transform

    def captions(self, image_id: int) -> List[str]:
        return [caption.strip() for caption in self.annotations.captions[image_id]]

    def __len__(self) -> int:
        return len(self.image_ids)

    def read(self, i: int) -> CaptionRecord:
        image_id = self.image_ids[i]
        image = load_image_tensor(self.images_dir / self.annotations.images[image_id]['file_name'])
        if self.transform is not None:
            image = self.transform(image)
        return CaptionRecord(image, self.captions(image_id), image_id)

    def text_records(self) -> Iterator[CaptionRecord]:
        """Every record without its image (nothing is opened): what the tokenizer's corpus reads."""
        return (CaptionRecord(None, self.captions(image_id), image_id) for image_id in self.image_ids)
