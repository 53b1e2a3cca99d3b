"""Does a faster precision change the answers? The trained shapes VQA and captioning models, loaded in each
precision vlm offers (`vlm.language.precision`), answer every shapes val question (VQAv2 accuracy per answer type)
and caption every val image (CIDEr, BLEU-4, ROUGE-L), greedy, with the generation lengths of their configs; printed
beside fp32's, with the fraction of answers identical to fp32's and the wall time of each pass.

    python -m benchmarks.speed.precision_quality --vqa models/shapes_vqa_smollm2 \\
        --captions models/shapes_captioning_smollm2 [--limit 300]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from vlm.data import CocoCaptions, VqaV2
from vlm.evaluation.caption_scores import evaluate_captions
from vlm.evaluation.vqa_accuracy import vqa_accuracy
from vlm.language.inference import VisionLanguagePredictor
from vlm.language.precision import PRECISIONS

VQA_TOKENS, CAPTION_TOKENS = 4, 24  # configs/shapes/vqa_smollm2.yaml, captioning_smollm2.yaml: max_new_tokens


def vqa_pass(model: str, precision: str, root: Path, limit: Optional[int], batch: int
             ) -> Tuple[Dict[str, float], List[str], float]:
    dataset = VqaV2(root / 'images' / 'val', root / 'annotations' / 'v2_OpenEnded_shapes_val_questions.json',
                    root / 'annotations' / 'v2_shapes_val_annotations.json', image_filename='{image_id:012d}.png')
    records = [dataset.question(i) for i in range(len(dataset.questions))][:limit]
    predictor = VisionLanguagePredictor.from_pretrained(model, precision=precision, batch_size=batch)
    start = time.perf_counter()
    texts = predictor.ask([str(dataset.image_path(r.image_id)) for r in records], [r.question for r in records],
                          max_new_tokens=VQA_TOKENS)
    seconds = time.perf_counter() - start
    scores = vqa_accuracy({r.question_id: r.answers for r in records},
                          {r.question_id: t for r, t in zip(records, texts)},
                          {r.question_id: r.answer_type for r in records})
    return scores, texts, seconds


def caption_pass(model: str, precision: str, root: Path, limit: Optional[int], batch: int
                 ) -> Tuple[Dict[str, float], List[str], float]:
    dataset = CocoCaptions(root / 'images' / 'val', root / 'annotations' / 'captions_val.json')
    ids = dataset.image_ids[:limit]
    paths = [str(dataset.images_dir / dataset.annotations.images[i]['file_name']) for i in ids]
    predictor = VisionLanguagePredictor.from_pretrained(model, precision=precision, batch_size=batch)
    start = time.perf_counter()
    texts = predictor.caption(paths, max_new_tokens=CAPTION_TOKENS)
    seconds = time.perf_counter() - start
    scores = evaluate_captions({i: dataset.captions(i) for i in ids}, dict(zip(ids, texts)))
    return scores, texts, seconds


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--vqa', default='models/shapes_vqa_smollm2')
    parser.add_argument('--captions', default='models/shapes_captioning_smollm2')
    parser.add_argument('--root', type=Path, default=Path('data/shapes'))
    parser.add_argument('--precisions', nargs='+', default=list(PRECISIONS), choices=PRECISIONS)
    parser.add_argument('--limit', type=int, help='the first N questions / images only')
    parser.add_argument('--batch-size', type=int, default=32)
    args = parser.parse_args(argv)
    rows = []
    for precision in args.precisions:
        vqa = vqa_pass(args.vqa, precision, args.root, args.limit, args.batch_size)
        captions = caption_pass(args.captions, precision, args.root, args.limit, args.batch_size)
        rows.append((precision, vqa, captions))
    base_vqa, base_captions = rows[0][1][1], rows[0][2][1]
    print(f'\nshapes val ({len(base_vqa)} questions, {len(base_captions)} images), greedy; '
          f'"same": answers identical to {rows[0][0]}\n')
    print('| precision | vqa_acc | yes/no | number | other | same answers | VQA pass | CIDEr | BLEU-4 | ROUGE-L | '
          'same captions | caption pass |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
    for precision, (vqa, answers, vqa_s), (cap, captions, cap_s) in rows:
        same_answers = sum(a == b for a, b in zip(answers, base_vqa)) / len(answers)
        same_captions = sum(a == b for a, b in zip(captions, base_captions)) / len(captions)
        print(f"| {precision} | {vqa['vqa_acc']:.3f} | {vqa.get('vqa_acc/yes/no', float('nan')):.3f} | "
              f"{vqa.get('vqa_acc/number', float('nan')):.3f} | {vqa.get('vqa_acc/other', float('nan')):.3f} | "
              f"{same_answers:.3f} | {vqa_s:.0f} s | {cap['CIDEr']:.3f} | {cap['BLEU4']:.3f} | {cap['ROUGE_L']:.3f} | "
              f"{same_captions:.3f} | {cap_s:.0f} s |")


if __name__ == '__main__':
    main()
