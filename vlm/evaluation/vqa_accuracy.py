"""VQAv2 accuracy, as the official evaluation computes it (GT-Vision-Lab/VQA,
PythonEvaluationTools/vqaEvaluation/vqaEval.py: the version that strips both sides and normalises both when the
human answers differ).

Per question, with the 10 human answers: both sides lose newlines, tabs and surrounding spaces; when the human
answers are not all the same string, the human answers and the prediction are normalised (`process_punctuation`
then `process_digit_article`); the accuracy is the mean over the 10 leave-one-out subsets of 9 answers of
min(#answers in the subset equal to the prediction / 3, 1). The overall accuracy is the mean over questions, and
per answer type ('yes/no', 'number', 'other') the mean over that type's questions.

Reproduced as is, including its quirks: when all 10 answers are the same string nothing is normalised, so 'Yes'
or 'yes.' scores 0 against ten 'yes' (VQAv2's answers are lower-case and unpunctuated, so feed lower-case
predictions); the period regex removes at most 32 periods (`re.UNICODE` passed as `count`); punctuation next to a
space is deleted, elsewhere replaced by a space. Differences: the official code rounds the reported accuracies to
two decimals of a percent, here they are fractions in [0, 1], unrounded; the official leave-one-out drops the
answer dict equal to the current one (the same as by position, since VQAv2 answer ids are unique).

An earlier variant of vqaEval.py (also the copy in LAVIS) differs in two places: it always normalises the
prediction (so 'Yes' scores 1 against ten 'yes'), and it only applies `process_punctuation` to the human answers
(not `process_digit_article`). On VQAv2's answers, which are already normalised, the two agree except for
predictions that need normalising on questions with ten identical answers.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, Sequence

from vlm.errors import DataError

from .caption_scores import select_scored

ANSWER_TYPES = ('yes/no', 'number', 'other')

# the official tables, verbatim
CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've",
    "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's",
    "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've",
    "mightve": "might've", "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at",
    "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd", "someoned've": "someone'd've",
    "someone'dve": "someone'd've", "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've", "somethingll": "something'll",
    "thats": "that's", "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas",
    "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't",
    "whatll": "what'll", "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's",
    "whered": "where'd", "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll",
    "whyre": "why're", "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're",
    "youve": "you've",
}
MANUAL_MAP = {'none': '0', 'zero': '0', 'one': '1', 'two': '2', 'three': '3', 'four': '4', 'five': '5', 'six': '6',
              'seven': '7', 'eight': '8', 'nine': '9', 'ten': '10'}
ARTICLES = ('a', 'an', 'the')
PERIOD_STRIP = re.compile(r'(?!<=\d)(\.)(?!\d)')  # sic: '(?!<=' is a lookahead, so any '.' not before a digit
COMMA_STRIP = re.compile(r'(\d)(,)(\d)')
PUNCT = [';', r'/', '[', ']', '"', '{', '}', '(', ')', '=', '+', '\\', '_', '-', '>', '<', '@', '`', ',', '?', '!']


def process_punctuation(text: str) -> str:
    """vqaEval.processPunctuation: each mark is deleted where it touches a space (or anywhere, when the text has
    a digit,digit), else replaced by a space; then periods not followed by a digit go (at most 32 of them)."""
    out = text
    for p in PUNCT:
        if (p + ' ' in text or ' ' + p in text) or COMMA_STRIP.search(text) is not None:
            out = out.replace(p, '')
        else:
            out = out.replace(p, ' ')
    return PERIOD_STRIP.sub('', out, count=re.UNICODE)  # the official passes re.UNICODE (32) as `count`


def process_digit_article(text: str) -> str:
    """vqaEval.processDigitArticle: lower-case, number words to digits, articles dropped, contractions restored."""
    words = [MANUAL_MAP.get(word, word) for word in text.lower().split()]
    words = [word for word in words if word not in ARTICLES]
    return ' '.join(CONTRACTIONS.get(word, word) for word in words)


def normalize_answer(answer: str) -> str:
    """An answer as the official evaluation compares it when the human answers differ: whitespace cleaned, then
    `process_punctuation` and `process_digit_article` ('Two' -> '2', 'a dog' -> 'dog', 'yes.' -> 'yes')."""
    return process_digit_article(process_punctuation(_clean(answer)))


def _clean(answer: str) -> str:
    return answer.replace('\n', ' ').replace('\t', ' ').strip()


def vqa_score(prediction: str, gt_answers: Sequence[str]) -> float:
    """The official accuracy of one predicted answer against the human answers (10 in VQAv2): the mean over the
    leave-one-out subsets of min(#matches in the subset / 3, 1). With 10 answers: 4 or more matching give 1,
    3 give 0.9, 2 give 0.6, 1 gives 0.3."""
    if isinstance(gt_answers, str) or not gt_answers:
        raise ValueError(f'expected a non-empty list of ground-truth answers, got {gt_answers!r}')
    gts = [_clean(answer) for answer in gt_answers]
    prediction = _clean(prediction)
    if len(set(gts)) > 1:
        gts = [normalize_answer(answer) for answer in gts]
        prediction = normalize_answer(prediction)
    matches = sum(answer == prediction for answer in gts)
    # leaving out answer i leaves `matches - (gts[i] == prediction)` matches among the others
    return sum(min(1.0, (matches - (answer == prediction)) / 3) for answer in gts) / len(gts)


def vqa_accuracy(answers: Mapping[Any, Sequence[str]], predictions: Mapping[Any, str],
                 answer_types: Optional[Mapping[Any, str]] = None, allow_missing: bool = False,
                 source: str = 'predictions') -> Dict[str, float]:
    """{'vqa_acc': mean of `vqa_score` over the questions, 'vqa_acc/<type>': the mean over each answer type's
    questions} as fractions in [0, 1]. answers: question id -> human answers; predictions: question id -> answer.

    A prediction for a question not in `answers` raises `DataError` naming the ids, as does a question of
    `answers` without a prediction unless `allow_missing` (then only the predicted questions are scored)."""
    for key, gts in answers.items():
        if isinstance(gts, str) or not isinstance(gts, Sequence) or not gts or not all(isinstance(a, str) for a in gts):
            raise DataError('answers', f'expected a non-empty list of answer strings, got {gts!r}'[:200],
                            record=f'question id {key}', field='answers')
    for key, answer in predictions.items():
        if not isinstance(answer, str):
            raise DataError(source, f'predicted answer is not a string: {answer!r}', record=f'question id {key}',
                            field='answer')
    ids = select_scored(answers, predictions, allow_missing, source, what='question')
    scores = {key: vqa_score(predictions[key], answers[key]) for key in ids}
    metrics = {'vqa_acc': sum(scores.values()) / len(scores)}
    by_type: Dict[str, List[float]] = {}
    for key, score in scores.items():
        kind = (answer_types or {}).get(key)
        if kind is not None:
            by_type.setdefault(kind, []).append(score)
    for kind in sorted(by_type, key=lambda k: (ANSWER_TYPES.index(k) if k in ANSWER_TYPES else len(ANSWER_TYPES), k)):
        metrics[f'vqa_acc/{kind}'] = sum(by_type[kind]) / len(by_type[kind])
    return metrics
