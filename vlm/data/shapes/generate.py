"""Generate the shapes dataset: draw and describe every image in worker processes, then write the JSON files.

Image `index` of a split draws from random generators seeded by (seed, stream, index) only, so the output
does not depend on the number of workers; annotation ids are given out afterwards in image order.
"""
from __future__ import annotations

import multiprocessing
import zlib
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Union

import numpy as np

from .captions import make_captions
from .constants import CLASSIFICATION_CLASSES, COLOURS, SEGMENTATION_CLASSES
from .conversations import shapes_conversations
from .draw import label_map, render
from .formats import (
    coco_captions,
    coco_categories,
    coco_image,
    coco_instances,
    instance_annotation,
    vqa_annotations,
    vqa_questions,
)
from .paths import (
    IMAGE_ID_OFFSETS,
    META_FILE,
    SPLIT_FILES,
    SPLITS,
    classification_file_name,
    image_file_name,
    image_id,
    shapes_paths,
)
from .scene import layout_scene, seen_objects, single_object_scene
from .vqa import make_questions
from .writer import staged_directory, write_json, write_png

META_VERSION = 1


class ImageRngs(NamedTuple):
    """Independent generators for one image: its layout, its pixels, and its captions and questions."""
    layout: np.random.Generator
    render: np.random.Generator
    text: np.random.Generator


class _Job(NamedTuple):
    split: str
    index: int
    category: Optional[str]  # None: an instance image; else a classification image of this class


class _Settings(NamedTuple):
    root: Path
    seed: int
    image_size: int
    classification_image_size: int


def image_rngs(seed: int, stream: str, index: int) -> ImageRngs:
    """The generators of image `index` of `stream` ('train', 'val', 'classification/train/circle', ...)."""
    sequence = np.random.SeedSequence([seed, zlib.crc32(stream.encode()), index])
    layout, pixels, text = (np.random.default_rng(child) for child in sequence.spawn(3))
    return ImageRngs(layout, pixels, text)


def _instance_image(settings: _Settings, split: str, index: int) -> Dict[str, Any]:
    """Draw image `index` of `split` and its label map; return its COCO image entry, instance annotations
    (without ids), captions and questions."""
    rngs = image_rngs(settings.seed, split, index)
    scene = layout_scene(rngs.layout, settings.image_size)
    name = image_file_name(image_id(split, index))
    paths = shapes_paths(settings.root, split)
    write_png(paths['images'] / name, render(rngs.render, scene))
    write_png(paths['segmentation'] / name, label_map(scene))
    seen = seen_objects(scene)
    return {
        'image': coco_image(image_id(split, index), name, settings.image_size),
        'annotations': [instance_annotation(scene.visible_mask(k), shape) for k, shape in enumerate(scene.objects)],
        'captions': make_captions(rngs.text, seen, settings.image_size),
        'questions': make_questions(rngs.text, seen, settings.image_size),
        'counts': dict(Counter(obj.category for obj in seen)),
    }


def _classification_image(settings: _Settings, split: str, category: str, index: int) -> None:
    """Draw classification image `index` of class `category` in `split`."""
    rngs = image_rngs(settings.seed, f'classification/{split}/{category}', index)
    scene = single_object_scene(rngs.layout, settings.classification_image_size, category)
    folder = shapes_paths(settings.root, split)['classification'] / category
    write_png(folder / classification_file_name(category, index + 1), render(rngs.render, scene))


def _run_job(job: _Job, settings: _Settings) -> Optional[Dict[str, Any]]:
    """Draw one image; an instance image returns its record, a classification image None."""
    if job.category is None:
        return _instance_image(settings, job.split, job.index)
    _classification_image(settings, job.split, job.category, job.index)
    return None


def _map(function: Callable[[_Job], Any], jobs: Sequence[_Job], workers: int,
         progress: Optional[Callable[[int, int], None]] = None) -> List[Any]:
    """`function` over `jobs`, in order; in `workers` forked processes when workers > 1 (fork, not spawn, so
    the workers need not re-import torch); `progress(done, total)` after each job."""
    results: List[Any] = []
    if workers <= 1:
        iterator = map(function, jobs)
        pool = None
    else:
        methods = multiprocessing.get_all_start_methods()
        pool = multiprocessing.get_context('fork' if 'fork' in methods else None).Pool(workers)
        iterator = pool.imap(function, jobs, chunksize=16)
    try:
        for result in iterator:
            results.append(result)
            if progress is not None:
                progress(len(results), len(jobs))
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return results


def _write_split(root: Path, seed: int, split: str, records: Sequence[Dict[str, Any]]) -> Dict[str, int]:
    """Write the instances, captions, VQA and conversation files of a split from its image records; return their
    counts."""
    images, instances, captions, questions = [], [], [], []
    for record in records:
        image = record['image']
        images.append(image)
        for annotation in record['annotations']:
            instances.append({**annotation, 'id': len(instances) + 1, 'image_id': image['id']})
        for caption in record['captions']:
            captions.append({'id': len(captions) + 1, 'image_id': image['id'], 'caption': caption})
        questions += [(image['id'] * 100 + k, image['id'], qa) for k, qa in enumerate(record['questions'], 1)]
    paths = shapes_paths(root, split)
    write_json(paths['instances'], coco_instances(images, instances))
    write_json(paths['captions'], coco_captions(images, captions))
    write_json(paths['vqa_questions'], vqa_questions(split, questions))
    write_json(paths['vqa_annotations'], vqa_annotations(split, questions))
    dialogues = shapes_conversations(records, image_rngs(seed, f'conversations/{split}', 0).text)
    write_json(paths['conversations'], dialogues)
    return {'images': len(images), 'annotations': len(instances), 'captions': len(captions),
            'questions': len(questions), 'conversations': len(dialogues),
            'empty_images': sum(not r['annotations'] for r in records)}


def _check_sizes(sizes: Dict[str, int]) -> None:
    """Raise ValueError for sizes the generator cannot honour."""
    limits = {'train_images': (0, 999_999), 'val_images': (0, 999_999), 'image_size': (32, 4096),
              'classification_images_per_class': (0, 999_999), 'classification_val_images_per_class': (0, 999_999),
              'classification_image_size': (16, 4096), 'seed': (0, 2**32 - 1)}
    for name, value in sizes.items():
        low, high = limits[name]
        if not low <= value <= high:
            raise ValueError(f'{name} must be in [{low}, {high}], got {value}')


def generate_shapes(
        out_dir: Union[str, Path],
        train_images: int = 2000,
        val_images: int = 300,
        image_size: int = 128,
        seed: int = 0,
        classification_images_per_class: int = 500,
        classification_val_images_per_class: int = 50,
        classification_image_size: int = 64,
        workers: int = 2,
        force: bool = False,
        progress: Optional[Callable[[int, int], None]] = None,
) -> Path:
    """Write the shapes dataset to `out_dir` (see vlm/data/shapes/__init__.py for the layout) and return it.

    The files are written into a temporary sibling directory that replaces `out_dir` only when complete.
    Raises FileExistsError if `out_dir` holds a dataset or other files, unless `force`.
    """
    sizes = dict(train_images=train_images, val_images=val_images, image_size=image_size, seed=seed,
                 classification_images_per_class=classification_images_per_class,
                 classification_val_images_per_class=classification_val_images_per_class,
                 classification_image_size=classification_image_size)
    _check_sizes(sizes)
    out = Path(out_dir)
    per_split = {'train': train_images, 'val': val_images}
    per_class = {'train': classification_images_per_class, 'val': classification_val_images_per_class}
    with staged_directory(out, force) as root:
        for split in SPLITS:
            paths = shapes_paths(root, split)
            for folder in (paths['images'], paths['segmentation'], paths['instances'].parent):
                folder.mkdir(parents=True, exist_ok=True)
            for category in CLASSIFICATION_CLASSES:
                (paths['classification'] / category).mkdir(parents=True)
        jobs = [_Job(split, i, None) for split in SPLITS for i in range(per_split[split])]
        jobs += [_Job(split, i, category) for split in SPLITS for category in CLASSIFICATION_CLASSES
                 for i in range(per_class[split])]
        settings = _Settings(root, seed, image_size, classification_image_size)
        results = _map(partial(_run_job, settings=settings), jobs, workers, progress)
        counts = {split: _write_split(root, seed, split, [r for job, r in zip(jobs, results)
                                                    if job.category is None and job.split == split])
                  for split in SPLITS}
        write_json(root / META_FILE, {
            'version': META_VERSION, 'generator': 'vlm.data.shapes', 'seed': seed, 'image_size': image_size,
            'categories': coco_categories(),
            'colours': [{'name': name, 'rgb': list(rgb)} for name, rgb in COLOURS.items()],
            'segmentation_classes': SEGMENTATION_CLASSES,
            'train_images': train_images, 'val_images': val_images, 'counts': counts,
            'classification': {'image_size': classification_image_size, 'classes': CLASSIFICATION_CLASSES,
                               'train_per_class': classification_images_per_class,
                               'val_per_class': classification_val_images_per_class},
            'image_id_offsets': IMAGE_ID_OFFSETS, 'files': SPLIT_FILES,
        })
    return out
