"""COCO mAP evaluation speed: pycocotools against faster-coco-eval on a synthetic COCO-sized bbox set.

A seeded synthetic ground truth (5,000 images of 640x480, 1-10 boxes each, the 80 COCO category ids) and 100
detections per image (three jittered copies of each GT box, labels sometimes wrong, the rest random false
positives; random scores) are evaluated by `vlm.evaluation.evaluate_coco` with both backends in this process.
Prints the time of each, the speed ratio (goal: faster-coco-eval >= 4x faster) and the largest difference
between the two sets of 12 stats.

    python -m benchmarks.speed.coco_eval_speed [--images 5000] [--detections 100] [--seed 0]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from vlm.evaluation import STAT_NAMES, evaluate_coco, load_ground_truth, validate_results

WIDTH, HEIGHT = 640, 480
COCO_CATEGORY_IDS = [i for i in range(1, 91) if i not in {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}]
COPIES = 3  # detections near each GT box


def random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 4) XYWH boxes inside the image, sides log-uniform in [6, 360] px (small, medium and large)."""
    wh = np.exp(rng.uniform(np.log(6), np.log(360), (n, 2)))
    xy = rng.uniform(0, 1, (n, 2)) * (np.array([WIDTH, HEIGHT]) - wh)
    return np.concatenate([xy, wh], axis=1)


def synthetic_set(images: int, detections: int, seed: int) -> tuple[dict, list[dict]]:
    """A COCO ground-truth dataset and a results list, both deterministic in `seed`."""
    rng = np.random.default_rng(seed)
    categories = np.array(COCO_CATEGORY_IDS)
    image_ids = np.arange(1, images + 1)
    per_image = rng.integers(1, 11, images)
    gt_images, gt_boxes = np.repeat(image_ids, per_image), random_boxes(rng, int(per_image.sum()))
    gt_categories = rng.choice(categories, len(gt_boxes))

    source = np.repeat(np.arange(len(gt_boxes)), COPIES)  # noisy copies of each GT box
    jitter = rng.normal(0, 0.08, (len(source), 4)) * np.tile(gt_boxes[source, 2:], 2)
    copies = np.abs(gt_boxes[source] + jitter)
    relabel = rng.random(len(source)) < 0.1
    copy_categories = np.where(relabel, rng.choice(categories, len(source)), gt_categories[source])
    false_positives = detections - COPIES * per_image
    fp_images = np.repeat(image_ids, false_positives)
    det_images = np.concatenate([gt_images[source], fp_images])
    det_boxes = np.round(np.concatenate([copies, random_boxes(rng, len(fp_images))]), 2)
    det_categories = np.concatenate([copy_categories, rng.choice(categories, len(fp_images))])
    scores = np.round(rng.random(len(det_images)), 5)

    gt = {
        'images': [{'id': i, 'width': WIDTH, 'height': HEIGHT} for i in image_ids.tolist()],
        'categories': [{'id': c, 'name': f"category {c}"} for c in COCO_CATEGORY_IDS],
        'annotations': [{'id': n, 'image_id': i, 'category_id': c, 'bbox': b, 'area': b[2] * b[3], 'iscrowd': 0}
                        for n, (i, c, b) in enumerate(zip(gt_images.tolist(), gt_categories.tolist(),
                                                          gt_boxes.tolist()), 1)],
    }
    results = [{'image_id': i, 'category_id': c, 'bbox': b, 'score': s}
               for i, c, b, s in zip(det_images.tolist(), det_categories.tolist(), det_boxes.tolist(),
                                     scores.tolist())]
    return gt, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--images', type=int, default=5000)
    parser.add_argument('--detections', type=int, default=100, help='per image (at least 30)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    gt, results = synthetic_set(args.images, args.detections, args.seed)
    print(f"synthetic set: {len(gt['images'])} images, {len(gt['annotations'])} GT boxes, "
          f"{len(results)} detections, {len(gt['categories'])} categories ({time.perf_counter() - start:.1f} s)")
    start = time.perf_counter()
    validate_results(results, load_ground_truth(gt))
    checks = time.perf_counter() - start

    seconds, stats = {}, {}
    for backend in ('pycocotools', 'faster-coco-eval'):
        start = time.perf_counter()
        stats[backend] = evaluate_coco(gt, results, 'bbox', backend).as_dict()
        seconds[backend] = time.perf_counter() - start

    print(f"\n{'backend':<18} {'seconds':>8} {'AP':>7} {'AP50':>7} {'AR100':>7}")
    for backend, value in seconds.items():
        row = stats[backend]
        print(f"{backend:<18} {value:8.2f} {row['AP']:7.4f} {row['AP50']:7.4f} {row['AR100']:7.4f}")
    print(f"(both include {checks:.2f} s of input checks and ground-truth copy)")
    ratio = seconds['pycocotools'] / seconds['faster-coco-eval']
    backends_only = (seconds['pycocotools'] - checks) / (seconds['faster-coco-eval'] - checks)
    print(f"\nspeed ratio: faster-coco-eval is {ratio:.1f}x faster (goal >= 4x: {'met' if ratio >= 4 else 'NOT met'}); "
          f"{backends_only:.1f}x without the checks")
    differences = {name: abs(stats['pycocotools'][name] - stats['faster-coco-eval'][name]) for name in STAT_NAMES}
    worst = max(differences, key=differences.get)
    identical = [name for name, difference in differences.items() if difference == 0]
    print(f"12 stats: max |difference| {differences[worst]:.3g} ({worst}); bit-identical: {len(identical)}/12 "
          f"({', '.join(identical)})")


if __name__ == '__main__':
    main()
