"""Caption scores as COCO computes them: BLEU-1..4, CIDEr (CIDEr-D) and ROUGE-L from pycocoevalcap's own scorers,
called exactly as COCOEvalCap calls them, on captions tokenised by `ptb_tokenize` (PTBTokenizer in Python: no
Java). METEOR and SPICE (Java programs) are not computed."""
from __future__ import annotations

from typing import Any, Dict, Hashable, Iterable, List, Mapping, Sequence

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from vlm.errors import DataError

from .ptb_tokenizer import ptb_tokenize

CAPTION_METRICS = ('BLEU1', 'BLEU2', 'BLEU3', 'BLEU4', 'CIDEr', 'ROUGE_L')

def _short(ids: Iterable[Any], limit: int = 10) -> str:
    try:
        ids = sorted(ids)
    except TypeError:  # ids of mixed types
        ids = sorted(ids, key=repr)
    return repr(ids[:limit])[:-1] + (f', ... ({len(ids)} in all)]' if len(ids) > limit else ']')


def select_scored(references: Mapping, predictions: Mapping, allow_missing: bool, source: str,
                  what: str = 'image') -> List[Hashable]:
    """The ids to score: all of `references` (each must have a prediction) or, with `allow_missing`, those
    predicted. A prediction for an id not in `references` is always an error."""
    unknown = [key for key in predictions if key not in references]
    if unknown:
        raise DataError(source, f'{len(unknown)} {what} ids are not in the references: {_short(unknown)}',
                        field=f'{what}_id')
    missing = [key for key in references if key not in predictions]
    if missing and not allow_missing:
        raise DataError(source, f'no prediction for {len(missing)} of the {len(references)} {what}s of the '
                                f'references: {_short(missing)} (allow_missing scores only the predicted ones)',
                        field=f'{what}_id')
    if not predictions:
        raise DataError(source, 'no predictions to score')
    return [key for key in references if key in predictions]


def evaluate_captions(references: Mapping[Hashable, Sequence[str]], predictions: Mapping[Hashable, str],
                      allow_missing: bool = False, source: str = 'predictions') -> Dict[str, float]:
    """BLEU1..BLEU4, CIDEr (pycocoevalcap's CIDEr-D) and ROUGE_L of one predicted caption per image.

    references: image id -> reference captions (at least one); predictions: image id -> caption ('' allowed; it
    scores 0). A prediction for an image without references raises `DataError` naming the ids, as does an image
    of the references without a prediction unless `allow_missing` (then only the predicted images are scored, as
    COCOEvalCap does with `params['image_id'] = cocoRes.getImgIds()`). CIDEr's document frequencies come from the
    references of the scored images, so CIDEr depends on the set scored (and is 0 for a single image).
    """
    for key, refs in references.items():
        if isinstance(refs, str) or not isinstance(refs, Sequence) or not refs:
            raise DataError('references', 'expected a non-empty list of reference captions',
                            record=f'image id {key}', field='caption')
        for ref in refs:
            if not isinstance(ref, str):
                raise DataError('references', f'reference caption is not a string: {ref!r}',
                                record=f'image id {key}', field='caption')
    for key, caption in predictions.items():
        if not isinstance(caption, str):
            raise DataError(source, f'predicted caption is not a string: {caption!r}', record=f'image id {key}',
                            field='caption')
    ids = select_scored(references, predictions, allow_missing, source)
    gts = {key: [ptb_tokenize(ref) for ref in references[key]] for key in ids}
    res = {key: [ptb_tokenize(predictions[key])] for key in ids}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    rouge, _ = Rouge().compute_score(gts, res)
    scores = dict(zip(CAPTION_METRICS, [*bleu, cider, rouge]))
    return {name: float(value) for name, value in scores.items()}
