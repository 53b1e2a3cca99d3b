"""VQAv2 accuracy: hand-computed values, input checks, the `VqaAccuracy` Metric, and `vlm evaluate-vqa`."""
import json

import numpy as np
import pytest
import torch

from vlm.cli import main as vlm_main
from vlm.cli.evaluate import vqa_main
from vlm.data.vqa import read_vqa_annotations
from vlm.errors import DataError
from vlm.evaluation import VqaAccuracy
from vlm.evaluation.results_files import vqa_results
from vlm.evaluation.vqa_accuracy import normalize_answer, process_punctuation, vqa_accuracy, vqa_score

# --- VQA accuracy: hand-computed ---------------------------------------------------------------------------------

OTHERS = ['cat', 'bird', 'cow', 'horse', 'sheep', 'fish', 'mouse', 'goat', 'duck', 'pig']


def gt_with(matches: int, answer: str = 'dog') -> list[str]:
    """10 human answers, `matches` of them `answer`, the rest all different."""
    return [answer] * matches + OTHERS[:10 - matches]


@pytest.mark.parametrize('matches, expected', [
    # leaving out one of the 10 answers leaves 9; accuracy = mean over the 10 of min(matches among the 9 / 3, 1)
    (0, 0.0),
    (1, 9 * (1 / 3) / 10),  # 9 subsets keep the match (1/3), 1 drops it (0): 0.3
    (2, (8 * 2 / 3 + 2 * 1 / 3) / 10),  # 8 subsets keep both (2/3), 2 keep one (1/3): 0.6
    (3, (7 * 1 + 3 * 2 / 3) / 10),  # 7 keep all three (1), 3 keep two (2/3): 0.9
    (4, 1.0),  # every subset keeps at least 3
    (10, 1.0),
])
def test_vqa_score_leave_one_out(matches, expected):
    assert vqa_score('dog', gt_with(matches)) == pytest.approx(expected, abs=1e-12)
    assert round(expected, 12) in (0.0, 0.3, 0.6, 0.9, 1.0)


@pytest.mark.parametrize('raw, normalised', [
    ('Two', '2'), ('none', '0'), ('TEN', '10'), ('a dog', 'dog'), ('the red ball', 'red ball'), ('an apple', 'apple'),
    ('dont', "don't"), ('isnt', "isn't"), ('yes.', 'yes'), ('yes!', 'yes'), ('  Yes \n', 'yes'),
    ('left-hand', 'left hand'),  # a mark between letters becomes a space
    ('dog , cat', 'dog cat'),  # a mark next to a space is deleted
    ('1,000', '1000'),  # digit,digit: every mark is deleted
    ('3.5', '3.5'), ('u.s.a.', 'usa'),  # periods go unless a digit follows
    ("it's", "it's"),  # the apostrophe is not in the official list
])
def test_answer_normalisation(raw, normalised):
    assert normalize_answer(raw) == normalised


def test_period_strip_removes_at_most_32_periods():
    """The official code passes re.UNICODE (32) as re.sub's `count`."""
    assert process_punctuation('.' * 40) == '.' * 8


def test_normalisation_only_when_the_human_answers_differ():
    """As the official vqaEval: ten identical answers are compared as they are (only stripped), so 'Yes' gets 0;
    when they differ, both sides are normalised."""
    assert vqa_score('yes', ['yes'] * 10) == 1.0
    assert vqa_score(' yes\t', ['yes'] * 10) == 1.0
    assert vqa_score('Yes', ['yes'] * 10) == 0.0
    assert vqa_score('yes.', ['yes'] * 10) == 0.0
    assert vqa_score('Yes.', ['yes'] * 9 + ['no']) == 1.0
    assert vqa_score('Two', ['2'] * 3 + ['two'] + OTHERS[:6]) == 1.0  # 'two' -> '2' too: 4 matches
    assert vqa_score('the dog', gt_with(2, 'a dog')) == pytest.approx(0.6)


def test_vqa_accuracy_overall_and_per_answer_type():
    answers = {1: ['yes'] * 10, 2: gt_with(2, '2'), 3: gt_with(3, 'red'), 4: ['no'] * 10}
    types = {1: 'yes/no', 2: 'number', 3: 'other', 4: 'yes/no'}
    predictions = {1: 'yes', 2: 'two', 3: 'red', 4: 'yes'}
    scores = [1.0, 0.6, 0.9, 0.0]
    metrics = vqa_accuracy(answers, predictions, types)
    assert metrics == pytest.approx({'vqa_acc': sum(scores) / 4, 'vqa_acc/yes/no': 0.5, 'vqa_acc/number': 0.6,
                                     'vqa_acc/other': 0.9}, abs=1e-12)
    assert list(metrics) == ['vqa_acc', 'vqa_acc/yes/no', 'vqa_acc/number', 'vqa_acc/other']
    assert vqa_accuracy(answers, predictions) == {'vqa_acc': pytest.approx(sum(scores) / 4)}


def test_vqa_accuracy_checks_ids():
    answers = {1: ['yes'] * 10, 2: ['no'] * 10}
    with pytest.raises(DataError, match=r'1 question ids are not in the references: \[7\]'):
        vqa_accuracy(answers, {1: 'yes', 2: 'no', 7: 'yes'})
    with pytest.raises(DataError, match=r'no prediction for 1 of the 2 questions of the references: \[2\]'):
        vqa_accuracy(answers, {1: 'yes'})
    assert vqa_accuracy(answers, {1: 'yes'}, allow_missing=True) == {'vqa_acc': 1.0}
    with pytest.raises(DataError, match='no predictions'):
        vqa_accuracy(answers, {}, allow_missing=True)
    with pytest.raises(DataError, match='not a string'):
        vqa_accuracy(answers, {1: 'yes', 2: 3})
    with pytest.raises(DataError, match='non-empty list'):
        vqa_accuracy({1: []}, {1: 'yes'})
    with pytest.raises(ValueError):
        vqa_score('yes', [])


def test_vqa_results_records():
    assert vqa_results(torch.tensor([5, 6]), ['yes', '']) == [{'question_id': 5, 'answer': 'yes'},
                                                               {'question_id': 6, 'answer': ''}]
    assert vqa_results([np.int64(3)], ['2']) == [{'question_id': 3, 'answer': '2'}]
    assert type(vqa_results([np.int64(3)], ['2'])[0]['question_id']) is int
    with pytest.raises(ValueError, match='2 question ids but 1 answers'):
        vqa_results([1, 2], ['yes'])
    with pytest.raises(ValueError, match='not an integer'):
        vqa_results([1.5], ['yes'])
    with pytest.raises(ValueError, match='not a string'):
        vqa_results([1], [None])


def write(path, data) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def vqa_files(tmp_path) -> tuple[str, str, dict]:
    gts = {101: (['yes'] * 10, 'yes/no'), 102: (gt_with(2, '2'), 'number'), 103: (gt_with(3, 'red'), 'other')}
    questions = {'questions': [{'question_id': q, 'image_id': 7, 'question': f'question {q}?'} for q in gts]}
    annotations = {'annotations': [
        {'question_id': q, 'image_id': 7, 'answer_type': kind, 'question_type': 'what', 'multiple_choice_answer': a[0],
         'answers': [{'answer': x, 'answer_confidence': 'yes', 'answer_id': i + 1} for i, x in enumerate(a)]}
        for q, (a, kind) in gts.items()]}
    return write(tmp_path / 'q.json', questions), write(tmp_path / 'a.json', annotations), annotations


def test_evaluate_vqa_command(tmp_path, capsys):
    questions, annotations, _ = vqa_files(tmp_path)
    results = write(tmp_path / 'results.json', vqa_results([101, 102, 103], ['Yes', 'two', 'red']))
    out = tmp_path / 'vqa.json'
    assert vlm_main(['evaluate-vqa', '--questions', questions, '--annotations', annotations,
                     '--predictions', results, '--json', str(out)]) == 0
    expected = {'vqa_acc': (0.0 + 0.6 + 0.9) / 3, 'vqa_acc/yes/no': 0.0, 'vqa_acc/number': 0.6, 'vqa_acc/other': 0.9}
    assert json.loads(out.read_text()) == pytest.approx(expected, abs=1e-12)
    assert capsys.readouterr().out.splitlines() == [
        '3 of 3 questions scored', 'vqa_acc         0.5000', 'vqa_acc/yes/no  0.0000', 'vqa_acc/number  0.6000',
        'vqa_acc/other   0.9000']
    answers, types = read_vqa_annotations(questions, annotations)
    assert answers[102] == gt_with(2, '2') and types == {101: 'yes/no', 102: 'number', 103: 'other'}


VQA_BAD = [
    ('results', lambda r, q, a: r[0].pop('answer'), "results[0] (question_id=101), field 'answer': missing"),
    ('results', lambda r, q, a: r[0].pop('question_id'), "results[0], field 'question_id': missing"),
    ('results', lambda r, q, a: r[1].update(question_id=999), "results[1] (question_id=999), field 'question_id': not "
                                                              "the id of a question"),
    ('results', lambda r, q, a: r[2].update(question_id=101), "results[2] (question_id=101), field 'question_id': "
                                                              "duplicate question id, first at results[0]"),
    ('results', lambda r, q, a: r[1].update(answer=2), "results[1] (question_id=102), field 'answer': answer is not a "
                                                       "string: 2"),
    ('results', lambda r, q, a: r.append({'question_id': 5.0, 'answer': 'x'}), "results[3] (question_id=5.0), field "
                                                                               "'question_id': question id is not"),
    ('questions', lambda r, q, a: q['questions'][1].pop('question_id'), "questions[1] (question_id='?'), field "
                                                                        "'question_id': missing"),
    ('questions', lambda r, q, a: q['questions'][1].update(question_id=101), "questions[1] (question_id=101), field "
                                                                             "'question_id': duplicate question id"),
    ('annotations', lambda r, q, a: a['annotations'][1].update(question_id=555),
     "annotations[1] (question_id=555), field 'question_id': unknown question"),
    ('annotations', lambda r, q, a: a['annotations'][1]['answers'][4].update(answer=None),
     "annotations[1] (question_id=102), field 'answers': answers[4] has no string answer"),
    ('annotations', lambda r, q, a: a['annotations'][1].update(answers=[]), "field 'answers': expected a non-empty"),
    ('annotations', lambda r, q, a: a['annotations'][1].update(image_id=8), "field 'image_id': image id 8 but the "
                                                                            "question's is 7"),
    ('annotations', lambda r, q, a: a['annotations'].pop(2), "field 'question_id': no annotation for 1 questions"),
    ('annotations', lambda r, q, a: a['annotations'].append(dict(a['annotations'][0])),
     "annotations[3] (question_id=101), field 'question_id': duplicate question id"),
]


@pytest.mark.parametrize('which, spoil, message', VQA_BAD)
def test_evaluate_vqa_bad_input(tmp_path, capsys, which, spoil, message):
    questions_path, annotations_path, annotations = vqa_files(tmp_path)
    questions = json.loads(open(questions_path).read())
    results = vqa_results([101, 102, 103], ['yes', '2', 'red'])
    spoil(results, questions, annotations)
    paths = {'questions': write(tmp_path / 'q.json', questions), 'annotations': write(tmp_path / 'a.json', annotations),
             'results': write(tmp_path / 'r.json', results)}
    assert vqa_main(['--questions', paths['questions'], '--annotations', paths['annotations'],
                     '--predictions', paths['results']]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"vlm evaluate-vqa: error: {paths[which]}") and message in error


def test_evaluate_vqa_missing_predictions(tmp_path, capsys):
    questions, annotations, _ = vqa_files(tmp_path)
    results = write(tmp_path / 'r.json', vqa_results([101], ['yes']))
    assert vqa_main(['--questions', questions, '--annotations', annotations, '--predictions', results]) == 1
    assert 'no prediction for 2 of the 3 questions of the references: [102, 103]' in capsys.readouterr().err
    assert vqa_main(['--questions', questions, '--annotations', annotations, '--predictions', results,
                     '--allow-missing']) == 0
    assert capsys.readouterr().out.splitlines()[:2] == ['1 of 3 questions scored', 'vqa_acc         1.0000']


def test_vqa_accuracy_metric_equals_the_function_and_counts_each_question_once():
    metric = VqaAccuracy()
    answers = {1: ['yes'] * 10, 2: gt_with(2, '2'), 3: gt_with(3, 'red')}
    types = {1: 'yes/no', 2: 'number', 3: 'other'}
    predictions = {1: 'no', 2: '2', 3: 'red'}
    for batch in ([1, 2], [2, 3]):  # question 2 seen twice
        metric.update(batch, [predictions[q] for q in batch], [answers[q] for q in batch], [types[q] for q in batch])
    assert metric.compute() == pytest.approx(vqa_accuracy(answers, predictions, types), abs=1e-12)
