"""Tiny datasets in the real on-disk layouts (COCO 2017, VQAv2, ImageNet, ADE20K), written per test."""
from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

CATEGORIES = [{'id': 3, 'name': 'car', 'supercategory': 'vehicle'}, {'id': 18, 'name': 'dog', 'supercategory': 'animal'}]


def write_image(path: Path, width: int, height: int, seed: int = 0, mode: str = 'RGB') -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).convert(mode).save(path)


def write_decompression_bomb(path: Path, side: int = 20000) -> int:
    """A valid 1-bit grey PNG of side x side pixels (400 M for 20000) that compresses to ~50 KB: what a
    decompression bomb looks like. Returns the file size in bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b'\x00' * (1 + (side + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    data = b''.join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack('>IIBBBBB', side, side, 1, 0, 0, 0, 0)
    payload = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', data) + chunk(b'IEND', b'')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return len(payload)


def rle(mask: np.ndarray) -> Dict[str, Any]:
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    encoded['counts'] = encoded['counts'].decode('ascii')
    return encoded


def coco_2017(root: Path, split: str = 'val', with_crowd: bool = True) -> Dict[str, Any]:
    """root/{split}2017/*.jpg + root/annotations/instances_{split}2017.json (+ captions): 3 images, 1 empty."""
    images: List[Dict[str, Any]] = []
    annotations: List[Dict[str, Any]] = []
    captions: List[Dict[str, Any]] = []
    for image_id, (width, height) in zip((139, 285, 632), ((64, 48), (40, 40), (50, 30))):
        file_name = f'{image_id:012d}.jpg'
        write_image(root / f'{split}2017' / file_name, width, height, seed=image_id)
        images.append({'id': image_id, 'file_name': file_name, 'width': width, 'height': height})
        captions += [{'id': image_id * 10 + k, 'image_id': image_id, 'caption': f'photo {k} of {image_id}'}
                     for k in range(2)]
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 5:25] = 1
    annotations.append({'id': 1, 'image_id': 139, 'category_id': 3, 'bbox': [5.0, 10.0, 20.0, 20.0], 'area': 400.0,
                        'iscrowd': 0, 'segmentation': rle(mask)})
    annotations.append({'id': 2, 'image_id': 139, 'category_id': 18, 'bbox': [30.0, 5.0, 10.0, 30.0], 'area': 150.0,
                        'iscrowd': 0, 'segmentation': [[30, 5, 40, 5, 40, 35, 30, 35]]})
    if with_crowd:
        crowd = np.zeros((40, 40), np.uint8)
        crowd[0:10, 0:40] = 1
        annotations.append({'id': 3, 'image_id': 285, 'category_id': 18, 'bbox': [0.0, 0.0, 40.0, 10.0],
                            'area': 400.0, 'iscrowd': 1, 'segmentation': rle(crowd)})
    annotations.append({'id': 4, 'image_id': 285, 'category_id': 3, 'bbox': [10.0, 15.0, 20.0, 20.0], 'area': 400.0,
                        'iscrowd': 0, 'segmentation': [[10, 15, 30, 15, 30, 35, 10, 35]]})
    instances = {'info': {}, 'licenses': [], 'images': images, 'annotations': annotations, 'categories': CATEGORIES}
    (root / 'annotations').mkdir(parents=True, exist_ok=True)
    (root / 'annotations' / f'instances_{split}2017.json').write_text(json.dumps(instances))
    (root / 'annotations' / f'captions_{split}2017.json').write_text(
        json.dumps({'info': {}, 'licenses': [], 'images': images, 'annotations': captions}))
    return instances


def vqa_v2(root: Path) -> None:
    """root/val2014/COCO_val2014_*.jpg + v2_OpenEnded_mscoco_val2014_questions.json + v2_mscoco_val2014_annotations.json."""
    questions, annotations = [], []
    for image_id in (42, 73):
        write_image(root / 'val2014' / f'COCO_val2014_{image_id:012d}.jpg', 32, 24, seed=image_id)
        qid = image_id * 1000
        questions.append({'question_id': qid, 'image_id': image_id, 'question': 'How many dogs are there?'})
        answers = ['2'] * 7 + ['3'] * 3
        annotations.append({'question_id': qid, 'image_id': image_id, 'question_type': 'how many',
                            'answer_type': 'number', 'multiple_choice_answer': '2',
                            'answers': [{'answer': a, 'answer_confidence': 'yes', 'answer_id': i + 1}
                                        for i, a in enumerate(answers)]})
    # a second question about image 42, listed after the others (questions need not be grouped by image)
    questions.append({'question_id': 42001, 'image_id': 42, 'question': 'What color is the dog?'})
    annotations.append({'question_id': 42001, 'image_id': 42, 'question_type': 'what color', 'answer_type': 'other',
                        'multiple_choice_answer': 'brown',
                        'answers': [{'answer': 'brown', 'answer_confidence': 'yes', 'answer_id': i + 1}
                                    for i in range(10)]})
    (root / 'v2_OpenEnded_mscoco_val2014_questions.json').write_text(json.dumps(
        {'info': {}, 'task_type': 'Open-Ended', 'data_type': 'mscoco', 'data_subtype': 'val2014',
         'license': {}, 'questions': questions}))
    (root / 'v2_mscoco_val2014_annotations.json').write_text(json.dumps(
        {'info': {}, 'license': {}, 'data_subtype': 'val2014', 'annotations': annotations}))


def imagenet(root: Path, per_class: int = 2) -> None:
    """root/{train,val}/<wnid>/*.JPEG for two classes."""
    for split in ('train', 'val'):
        for c, wnid in enumerate(('n01440764', 'n01443537')):
            for k in range(per_class):
                write_image(root / split / wnid / f'{wnid}_{k}.JPEG', 40, 30, seed=c * 10 + k)


def ade20k(root: Path, num_classes: int = 4) -> None:
    """root/images/{training,validation}/*.jpg + root/annotations/{training,validation}/*.png (0..num_classes-1)."""
    rng = np.random.default_rng(0)
    for split in ('training', 'validation'):
        for k in range(2):
            stem = f'ADE_{split}_{k:08d}'
            write_image(root / 'images' / split / f'{stem}.jpg', 36, 28, seed=k)
            labels = rng.integers(0, num_classes, (28, 36), dtype=np.uint8)
            (root / 'annotations' / split).mkdir(parents=True, exist_ok=True)
            Image.fromarray(labels, mode='L').save(root / 'annotations' / split / f'{stem}.png')
