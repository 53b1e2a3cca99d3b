"""COCO mAP: hand-computed stats, agreement of both backends with pycocotools run directly, input checks, the
`vlm evaluate-coco` command and the conversion of model detections to COCO results."""
import contextlib
import copy
import io
import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from vlm.cli.evaluate import coco_main as main
from vlm.evaluation import (
    BACKENDS,
    STAT_NAMES,
    CocoGroundTruthError,
    CocoResultsError,
    CocoStats,
    detections_to_coco_results,
    evaluate_coco,
    format_table,
)

AP_STATS = ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl')


def box_polygon(box: list[float]) -> list[float]:
    x, y, w, h = box
    return [x, y, x + w, y, x + w, y + h, x, y + h]


def tiny_gt() -> dict:
    """2 images, categories 3 and 7; category 3: a small box in image 10 and a large one in image 20,
    category 7: a medium box in image 10."""
    boxes = [(10, 3, [10, 10, 20, 20]), (10, 7, [40, 40, 50, 50]), (20, 3, [0, 0, 100, 100])]
    return {
        'images': [{'id': 10, 'height': 100, 'width': 100}, {'id': 20, 'height': 100, 'width': 100}],
        'categories': [{'id': 3, 'name': 'three'}, {'id': 7, 'name': 'seven'}],
        'annotations': [{'id': i + 1, 'image_id': image_id, 'category_id': category_id, 'bbox': box,
                         'area': box[2] * box[3], 'iscrowd': 0, 'segmentation': [box_polygon(box)]}
                        for i, (image_id, category_id, box) in enumerate(boxes)],
    }


def perfect_results(gt: dict) -> list[dict]:
    return [{'image_id': a['image_id'], 'category_id': a['category_id'], 'bbox': list(a['bbox']), 'score': 0.9}
            for a in gt['annotations']]


def random_set(seed: int, images: int = 12) -> tuple[dict, list[dict]]:
    """GT boxes (with polygon masks) in 3 categories, and jittered / mislabelled / spurious detections with
    box and RLE (str counts) mask, some GT marked crowd."""
    rng = np.random.default_rng(seed)
    height, width, categories = 48, 64, [2, 5, 9]
    gt = {'images': [{'id': 3 * i + 1, 'height': height, 'width': width} for i in range(images)],
          'categories': [{'id': c, 'name': str(c)} for c in categories], 'annotations': []}
    results = []

    def rle(x: float, y: float, w: float, h: float) -> dict:
        mask = np.zeros((height, width), np.uint8, order='F')
        mask[max(int(y), 0):int(y + h), max(int(x), 0):int(x + w)] = 1
        encoded = mask_utils.encode(mask)
        return {'size': encoded['size'], 'counts': encoded['counts'].decode()}

    for image in gt['images']:
        for _ in range(rng.integers(0, 5)):
            x, y, w, h = rng.uniform(0, 40), rng.uniform(0, 30), rng.uniform(2, 24), rng.uniform(2, 18)
            category = int(rng.choice(categories))
            gt['annotations'].append({'id': len(gt['annotations']) + 1, 'image_id': image['id'],
                                      'category_id': category, 'bbox': [x, y, w, h], 'area': w * h,
                                      'segmentation': [box_polygon([x, y, w, h])], 'iscrowd': int(rng.random() < 0.1)})
            for _ in range(rng.integers(0, 3)):
                dx, dy, dw, dh = rng.normal(0, 2, 4)
                box = [x + dx, y + dy, max(w + dw, 0.5), max(h + dh, 0.5)]
                label = category if rng.random() < 0.85 else int(rng.choice(categories))
                results.append({'image_id': image['id'], 'category_id': label, 'bbox': box,
                                'score': float(rng.random()), 'segmentation': rle(*box)})
        for _ in range(rng.integers(0, 3)):
            box = [rng.uniform(0, 50), rng.uniform(0, 40), rng.uniform(1, 14), rng.uniform(1, 8)]
            results.append({'image_id': image['id'], 'category_id': int(rng.choice(categories)), 'bbox': box,
                            'score': float(rng.random()), 'segmentation': rle(*box)})
    return gt, results


def for_iou_type(results: list[dict], iou_type: str) -> list[dict]:
    """bbox results without masks, segm results without boxes (mask areas then come from the masks)."""
    drop = 'segmentation' if iou_type == 'bbox' else 'bbox'
    return [{k: v for k, v in r.items() if k != drop} for r in results]


def pycocotools_directly(gt_path, results: list[dict], iou_type: str) -> tuple[np.ndarray, str]:
    """The reference: pycocotools' COCO / loadRes / COCOeval as documented, nothing of vlm."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_path))
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(results)), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
    table = io.StringIO()
    with contextlib.redirect_stdout(table):
        evaluator.summarize()
    return evaluator.stats, table.getvalue()


# --- hand-computed stats -------------------------------------------------------------------------------------

@pytest.mark.parametrize('backend', BACKENDS)
def test_perfect_predictions_give_one(backend):
    stats = evaluate_coco(tiny_gt(), perfect_results(tiny_gt()), backend=backend)
    assert stats.as_dict() == pytest.approx(dict.fromkeys(STAT_NAMES, 1.0), abs=1e-12)


@pytest.mark.parametrize('backend', BACKENDS)
def test_one_of_two_objects_found(backend):
    """Category 3: only its large object found (IoU 1), recall 1/2, so its precision is 1 at the 51 recall
    thresholds 0, 0.01, ..., 0.5 and 0 above: AP 51/101. Category 7: found, AP 1. The missed object is the only
    small one, the found ones are medium (7) and large (3)."""
    stats = evaluate_coco(tiny_gt(), perfect_results(tiny_gt())[1:], backend=backend)
    ap = (51 / 101 + 1) / 2
    expected = dict(AP=ap, AP50=ap, AP75=ap, APs=0.0, APm=1.0, APl=1.0,
                    AR1=0.75, AR10=0.75, AR100=0.75, ARs=0.0, ARm=1.0, ARl=1.0)
    assert stats.as_dict() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize('backend', BACKENDS)
def test_iou_between_thresholds(backend):
    """IoU 0.62 with the only (small) object: a match at the IoU thresholds 0.50, 0.55, 0.60 of the ten, so AP50
    is 1, AP75 is 0, AP and AR are 3/10; no medium or large objects: -1 (undefined)."""
    gt = {'images': [{'id': 1, 'height': 20, 'width': 20}], 'categories': [{'id': 4, 'name': 'four'}],
          'annotations': [{'id': 1, 'image_id': 1, 'category_id': 4, 'bbox': [0, 0, 10, 10], 'area': 100}]}
    results = [{'image_id': 1, 'category_id': 4, 'bbox': [0, 0, 6.2, 10], 'score': 0.5}]
    stats = evaluate_coco(gt, results, backend=backend)
    expected = dict(AP=0.3, AP50=1.0, AP75=0.0, APs=0.3, APm=-1.0, APl=-1.0,
                    AR1=0.3, AR10=0.3, AR100=0.3, ARs=0.3, ARm=-1.0, ARl=-1.0)
    assert stats.as_dict() == pytest.approx(expected, abs=1e-12)


# --- agreement with pycocotools ------------------------------------------------------------------------------

@pytest.mark.parametrize('iou_type', ['bbox', 'segm'])
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_pycocotools_backend_equals_pycocotools_run_directly(tmp_path, iou_type, seed):
    gt, results = random_set(seed)
    results = for_iou_type(results, iou_type)
    gt_path = tmp_path / 'gt.json'
    gt_path.write_text(json.dumps(gt))
    reference, reference_table = pycocotools_directly(gt_path, results, iou_type)
    stats = evaluate_coco(gt_path, results, iou_type)
    assert list(stats.as_dict().values()) == reference.tolist()
    assert stats.table == reference_table
    assert format_table(reference.tolist()) == reference_table


@pytest.mark.parametrize('iou_type', ['bbox', 'segm'])
@pytest.mark.parametrize('seed', [0, 1, 2, 3])
def test_backends_agree(iou_type, seed):
    """AR stats and tables are identical. AP stats agree to 1e-15: pycocotools divides by tp + fp + 2^-52, so a
    precision of 1/1 becomes 1 - 2^-52 there, where faster-coco-eval's C++ keeps 1."""
    gt, results = random_set(seed)
    results = for_iou_type(results, iou_type)
    reference = evaluate_coco(gt, results, iou_type, 'pycocotools')
    fast = evaluate_coco(gt, results, iou_type, 'faster-coco-eval')
    assert fast.table == reference.table
    for name in STAT_NAMES:
        got, want = getattr(fast, name), getattr(reference, name)
        assert got == want if name not in AP_STATS else abs(got - want) <= 1e-15, name
    assert 0 < reference.AP < 1 and 0 < reference.AR100 < 1  # a set where matching matters


@pytest.mark.parametrize('backend', BACKENDS)
def test_silent_and_inputs_unchanged(tmp_path, capsys, backend):
    gt, results = random_set(4)
    results = for_iou_type(results, 'segm')
    gt_before, results_before = copy.deepcopy(gt), copy.deepcopy(results)
    evaluate_coco(gt, results, 'segm', backend)
    gt_path = tmp_path / 'gt.json'
    gt_path.write_text(json.dumps(gt))
    evaluate_coco(gt_path, results, 'segm', backend)
    assert capsys.readouterr().out == ''
    assert gt == gt_before and results == results_before


@pytest.mark.parametrize('backend', BACKENDS)
def test_annotation_ids_zero_or_repeated_still_match(backend):
    """Both libraries mark 'unmatched' with annotation id 0 and index annotations by id; the private copy of the
    ground truth is renumbered, so these ids change nothing."""
    gt = tiny_gt()
    for annotation, bad_id in zip(gt['annotations'], [0, 0, 5]):
        annotation['id'] = bad_id
    stats = evaluate_coco(gt, perfect_results(gt), backend=backend)
    assert stats.as_dict() == pytest.approx(dict.fromkeys(STAT_NAMES, 1.0), abs=1e-12)


# --- no predictions, no ground truth -------------------------------------------------------------------------

@pytest.mark.parametrize('backend', BACKENDS)
def test_empty_predictions_give_zeros_without_pycocotools(monkeypatch, backend):
    gt_coco = COCO()
    gt_coco.dataset = tiny_gt()
    with contextlib.redirect_stdout(io.StringIO()):
        gt_coco.createIndex()
        with pytest.raises(IndexError):  # why pycocotools must not see an empty list
            gt_coco.loadRes([])

    def fail(*args, **kwargs):
        raise AssertionError('pycocotools called with no predictions')

    monkeypatch.setattr(COCO, 'loadRes', fail)
    monkeypatch.setattr(COCOeval, 'evaluate', fail)
    stats = evaluate_coco(tiny_gt(), [], backend=backend)
    assert stats.as_dict() == dict.fromkeys(STAT_NAMES, 0.0)
    assert stats.table == format_table([0.0] * 12) and stats.table.count(' = 0.000\n') == 12


@pytest.mark.parametrize('backend', BACKENDS)
def test_ground_truth_without_annotations_is_undefined(backend):
    gt = tiny_gt()
    results = perfect_results(gt)
    del gt['annotations']
    assert evaluate_coco(gt, results, backend=backend).as_dict() == dict.fromkeys(STAT_NAMES, -1.0)


# --- bad input -----------------------------------------------------------------------------------------------

def _rle_record(**changes) -> dict:
    mask = np.zeros((100, 100), np.uint8, order='F')
    mask[10:30, 10:30] = 1
    counts = mask_utils.encode(mask)['counts'].decode()
    return {'image_id': 10, 'category_id': 3, 'score': 0.5, 'segmentation': {'size': [100, 100], 'counts': counts},
            **changes}


def _without(record: dict, field: str) -> dict:
    return {k: v for k, v in record.items() if k != field}


BOX = {'image_id': 20, 'category_id': 7, 'bbox': [1, 2, 3, 4], 'score': 0.5}
BAD_RECORDS = [  # (iou_type, bad record at index 1, field named, words in the message)
    ('bbox', 5, None, 'must be a dict'),
    ('bbox', _without(BOX, 'image_id'), 'image_id', 'missing'),
    ('bbox', _without(BOX, 'category_id'), 'category_id', 'missing'),
    ('bbox', _without(BOX, 'score'), 'score', 'missing'),
    ('bbox', _without(BOX, 'bbox'), 'bbox', 'missing'),
    ('bbox', {**BOX, 'image_id': 999}, 'image_id', 'image_id=999'),
    ('bbox', {**BOX, 'image_id': '20'}, 'image_id', "image_id='20'"),
    ('bbox', {**BOX, 'category_id': 4}, 'category_id', 'category_id=4'),
    ('bbox', {**BOX, 'bbox': [1, 2, 3]}, 'bbox', '4 finite numbers'),
    ('bbox', {**BOX, 'bbox': [1, 2, float('nan'), 4]}, 'bbox', '4 finite numbers'),
    ('bbox', {**BOX, 'bbox': [1, 2, 3, float('inf')]}, 'bbox', '4 finite numbers'),
    ('bbox', {**BOX, 'bbox': '1 2 3 4'}, 'bbox', '4 finite numbers'),
    ('bbox', {**BOX, 'bbox': [1, 2, -3, 4]}, 'bbox', 'negative width or height'),
    ('bbox', {**BOX, 'bbox': [1, 2, 3, -4]}, 'bbox', 'negative width or height'),
    ('bbox', {**BOX, 'score': float('nan')}, 'score', 'finite number'),
    ('bbox', {**BOX, 'score': float('inf')}, 'score', 'finite number'),
    ('bbox', {**BOX, 'score': '0.5'}, 'score', 'finite number'),
    ('bbox', {**BOX, 'score': None}, 'score', 'finite number'),
    ('segm', _without(_rle_record(), 'segmentation'), 'segmentation', 'missing'),
    ('segm', _rle_record(segmentation=7), 'segmentation', 'RLE dict (size + counts) or a list of polygons'),
    ('segm', _rle_record(segmentation={'counts': 'abc'}), 'segmentation', 'RLE dict'),
    ('segm', _rle_record(segmentation={'size': [50, 100], 'counts': 'abc'}), 'segmentation', 'RLE size'),
    ('segm', _rle_record(segmentation={'size': [100, 100], 'counts': [1, 2]}), 'segmentation', 'RLE counts'),
    ('segm', _rle_record(segmentation=[[1, 2, 3, 4, 5]]), 'segmentation', 'list of polygons'),
    ('segm', _rle_record(segmentation=[[1, 2, 3, 4, float('nan'), 6]]), 'segmentation', 'list of polygons'),
]


@pytest.mark.parametrize('iou_type, record, field, words', BAD_RECORDS)
def test_bad_record_is_named(iou_type, record, field, words):
    good = BOX if iou_type == 'bbox' else _rle_record()
    with pytest.raises(CocoResultsError) as caught:
        evaluate_coco(tiny_gt(), [good, record], iou_type)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert caught.value.index == 1 and caught.value.field == field
    assert message.startswith('results[1]') and words in message
    if field is not None:
        assert f"field '{field}'" in message
    if isinstance(record, dict) and 'image_id' in record:
        assert f"image_id={record['image_id']!r}" in message


def test_results_must_be_a_list():
    with pytest.raises(CocoResultsError, match='must be a list of result records, got dict'):
        evaluate_coco(tiny_gt(), {'annotations': []})


def test_segm_accepts_str_counts_polygons_and_uncompressed_rle():
    mask = np.zeros((100, 100), np.uint8, order='F')
    mask[10:30, 10:30] = 1
    polygon = [[10, 10, 30, 10, 30, 30, 10, 30]]
    uncompressed = {'size': [100, 100], 'counts': [1010] + [20, 80] * 19 + [20, 7070]}
    assert np.array_equal(mask_utils.decode(mask_utils.frPyObjects(uncompressed, 100, 100)), mask)
    gt = tiny_gt()
    for record in (_rle_record(), _rle_record(segmentation=polygon), _rle_record(segmentation=uncompressed)):
        gt['annotations'][0]['segmentation'] = record['segmentation']
        assert evaluate_coco(gt, [record], 'segm').APs == pytest.approx(1.0, abs=1e-12)


def test_bad_ground_truth_is_named(tmp_path):
    gt = tiny_gt()
    gt['annotations'][1]['category_id'] = 8
    with pytest.raises(CocoGroundTruthError, match=r"annotations\[1\]: 'category_id'"):
        evaluate_coco(gt, perfect_results(tiny_gt()))
    with pytest.raises(CocoGroundTruthError, match="'height' and 'width'"):
        evaluate_coco({**tiny_gt(), 'images': [{'id': 10}, {'id': 20}]}, [_rle_record()], 'segm')
    with pytest.raises(FileNotFoundError, match='missing.json: ground-truth file not found'):
        evaluate_coco(tmp_path / 'missing.json', [])


# --- vlm evaluate-coco ---------------------------------------------------------------------------------------

def _write_inputs(tmp_path, results) -> tuple[str, str]:
    gt_path, results_path = tmp_path / 'gt.json', tmp_path / 'results.json'
    gt_path.write_text(json.dumps(tiny_gt()))
    results_path.write_text(json.dumps(results))
    return str(gt_path), str(results_path)


@pytest.mark.parametrize('backend', BACKENDS)
def test_cli_prints_table_and_writes_json(tmp_path, capsys, backend):
    gt_path, results_path = _write_inputs(tmp_path, perfect_results(tiny_gt())[1:])
    out = tmp_path / 'stats.json'
    assert main(['--gt', gt_path, '--predictions', results_path, '--backend', backend, '--json', str(out)]) == 0
    printed = capsys.readouterr()
    written = json.loads(out.read_text())
    assert list(written) == list(STAT_NAMES)
    assert written == pytest.approx(evaluate_coco(gt_path, results_path).as_dict(), abs=1e-15)
    assert printed.out == format_table(list(written.values())) and printed.err == ''


@pytest.mark.parametrize('predictions, words', [
    ('missing', ': predictions file not found'),
    ('[{"image_id": 10, "category_id": 3, "score": 0.5}]', "results[0] (image_id=10, category_id=3): field 'bbox'"),
    ('[1, 2', ': not valid JSON'),
])
def test_cli_bad_input_is_one_line(tmp_path, capsys, predictions, words):
    gt_path, results_path = _write_inputs(tmp_path, [])
    if predictions == 'missing':
        results_path = str(tmp_path / 'nothing.json')
    else:
        (tmp_path / 'results.json').write_text(predictions)
    assert main(['--gt', gt_path, '--predictions', results_path]) == 1
    printed = capsys.readouterr()
    assert printed.out == ''
    assert printed.err.startswith('vlm evaluate-coco: error: ') and printed.err.count('\n') == 1
    assert words in printed.err and (predictions != 'missing' or 'nothing.json' in printed.err)


# --- detections_to_coco_results ------------------------------------------------------------------------------

def test_detections_to_coco_results_round_trip():
    masks = torch.zeros(2, 20, 30, dtype=torch.bool)
    masks[0, 2:6, 3:9] = True
    masks[1, 10:19, 0:30] = True
    boxes = [torch.tensor([[3.0, 2.0, 9.0, 6.0], [0.0, 10.0, 30.0, 19.0]]), torch.zeros(0, 4)]
    scores = [torch.tensor([0.9123456, 0.25]), torch.zeros(0)]
    labels = [torch.tensor([1, 2]), torch.zeros(0, dtype=torch.long)]
    table = torch.tensor([0, 3, 7])
    results = detections_to_coco_results([10, 20], boxes, scores, labels, table,
                                         masks=[masks, torch.zeros(0, 20, 30, dtype=torch.uint8)])
    assert [r['bbox'] for r in results] == [[3.0, 2.0, 6.0, 4.0], [0.0, 10.0, 30.0, 9.0]]
    assert [r['category_id'] for r in results] == [3, 7] and [r['image_id'] for r in results] == [10, 10]
    assert [r['score'] for r in results] == [0.91235, 0.25]
    for record, mask in zip(results, masks):
        assert isinstance(record['segmentation']['counts'], str)
        assert np.array_equal(mask_utils.decode(record['segmentation']), mask.numpy())
    by_callable = detections_to_coco_results([10, 20], boxes, scores, labels, lambda label: [0, 3, 7][label])
    assert by_callable == [{k: v for k, v in r.items() if k != 'segmentation'} for r in results]
    gt = {'images': [{'id': 10, 'height': 20, 'width': 30}, {'id': 20, 'height': 20, 'width': 30}],
          'categories': [{'id': 3, 'name': 'a'}, {'id': 7, 'name': 'b'}],
          'annotations': [{'id': i + 1, 'image_id': 10, 'category_id': r['category_id'], 'bbox': r['bbox'],
                           'segmentation': r['segmentation'], 'area': float(mask_utils.area(r['segmentation']))}
                          for i, r in enumerate(results)]}
    for iou_type in ('bbox', 'segm'):
        assert evaluate_coco(gt, results, iou_type).AP == pytest.approx(1.0, abs=1e-12)


def test_detections_to_coco_results_leaves_inputs_alone_and_checks_them():
    boxes = torch.tensor([[1.0, 2.0, 5.0, 7.0]], dtype=torch.float64)
    results = detections_to_coco_results([1], [boxes], [torch.ones(1)], [torch.ones(1, dtype=torch.long)], {1: 4})
    assert results[0]['bbox'] == [1.0, 2.0, 4.0, 5.0] and results[0]['category_id'] == 4
    assert boxes.tolist() == [[1.0, 2.0, 5.0, 7.0]]
    with pytest.raises(ValueError, match='bool or uint8'):
        detections_to_coco_results([1], [boxes], [torch.ones(1)], [torch.ones(1, dtype=torch.long)],
                                   torch.tensor([0, 1]), masks=[torch.rand(1, 5, 5)])
    with pytest.raises(ValueError, match=r'image 1: .* got \[1, 2, 1\]'):
        detections_to_coco_results([1], [boxes], [torch.ones(2)], [torch.ones(1, dtype=torch.long)], {1: 4})


def test_stats_of_checks_length():
    with pytest.raises(ValueError, match='expected 12 values'):
        CocoStats.of([0.0] * 11)
