"""What CIDEr, BLEU-4 and ROUGE-L a caption of the shapes val images can score when its writer knows each scene
perfectly: the ceiling the captioning model's val scores should be read against.

Every shapes image has five references, each from a different template, with random wording, word order, object
pair and object (vlm/data/shapes/captions.py). A model, however good, cannot know which ones were drawn. Three
writers that know the scene (read from the generator, as the references were):

- reference vs the other four: one of the five references scored against the other four (as COCO scores a
  human caption); it never shares a template with them;
- a fresh caption: the generator describes the true scene anew (other random draws), one caption per image;
- consensus: of 50 fresh captions, the one that agrees best (CIDEr) with 30 other fresh ones; the caption a
  model that knows the scene and the templates would choose to maximise its expected CIDEr.

The scores are pycocoevalcap's, on the val references (`vlm.evaluation.evaluate_captions`).

    python -m benchmarks.experiments.caption_ceiling [--root data/shapes]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
from pycocoevalcap.cider.cider import Cider

from vlm.data import ensure_shapes
from vlm.data.captions import read_caption_references
from vlm.data.shapes.captions import make_captions
from vlm.data.shapes.generate import image_rngs
from vlm.data.shapes.paths import image_id
from vlm.data.shapes.scene import Seen, layout_scene, seen_objects
from vlm.evaluation.caption_scores import evaluate_captions
from vlm.evaluation.ptb_tokenizer import ptb_tokenize

SHOWN = ('BLEU4', 'CIDEr', 'ROUGE_L')


def fresh_captions(scenes: Dict[int, Sequence[Seen]], image_size: int, seed: int) -> Dict[int, List[str]]:
    """Five new captions of every scene, from a generator seeded with `seed`."""
    rng = np.random.default_rng(seed)
    return {key: make_captions(rng, objects, image_size) for key, objects in scenes.items()}


def consensus(scenes: Dict[int, Sequence[Seen]], image_size: int, candidates: int = 10, judges: int = 6) -> Dict[int, str]:
    """Per image, the fresh caption with the highest CIDEr against other fresh captions (minimum Bayes risk)."""
    pool: Dict[int, List[str]] = {key: [] for key in scenes}
    for seed in range(candidates):
        for key, captions in fresh_captions(scenes, image_size, 1000 + seed).items():
            pool[key] += [caption for caption in captions if caption not in pool[key]]
    judged: Dict[int, List[str]] = {key: [] for key in scenes}
    for seed in range(judges):
        for key, captions in fresh_captions(scenes, image_size, 2000 + seed).items():
            judged[key] += [ptb_tokenize(caption) for caption in captions]
    best = {key: (-1.0, '') for key in scenes}
    for k in range(max(len(captions) for captions in pool.values())):
        picks = {key: captions[k % len(captions)] for key, captions in pool.items()}
        _, scores = Cider().compute_score(judged, {key: [ptb_tokenize(text)] for key, text in picks.items()})
        for key, score in zip(judged, scores):
            if score > best[key][0]:
                best[key] = (float(score), picks[key])
    return {key: caption for key, (_, caption) in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--root', default='data/shapes')
    args = parser.parse_args()
    ensure_shapes(args.root)
    root = Path(args.root)
    meta = json.loads((root / 'shapes_meta.json').read_text())
    size = meta['image_size']
    references = read_caption_references(root / 'annotations' / 'captions_val.json')
    scenes = {image_id('val', i): seen_objects(layout_scene(image_rngs(meta['seed'], 'val', i).layout, size))
              for i in range(meta['val_images'])}
    rows = {}
    for left_out in range(4):  # every val image has at least 4 references
        others = {key: [c for j, c in enumerate(refs) if j != left_out] for key, refs in references.items()}
        rows[f'reference {left_out + 1} vs the other references'] = evaluate_captions(
            others, {key: refs[left_out] for key, refs in references.items()})
    fresh = fresh_captions(scenes, size, 1000)
    rows['a fresh caption of the true scene'] = evaluate_captions(
        references, {key: captions[0] for key, captions in fresh.items()})
    rows['consensus of 50 fresh captions'] = evaluate_captions(references, consensus(scenes, size))
    print(f"{'writer':45s}" + ''.join(f'{name:>10s}' for name in SHOWN))
    for name, scores in rows.items():
        print(f'{name:45s}' + ''.join(f'{scores[key]:10.3f}' for key in SHOWN))


if __name__ == '__main__':
    main()
