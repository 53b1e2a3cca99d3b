"""The shapes generator: COCO / VQAv2 / label-map / ImageFolder files that agree with each other and with the
pixels, true captions and answers, byte-for-byte determinism, the CLI and atomic output."""
import json
import re
from collections import Counter
from pathlib import Path
from typing import Dict, List, NamedTuple

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from vlm.cli import data as cli
from vlm.data.shapes import (
    CATEGORIES,
    CLASSIFICATION_CLASSES,
    COLOURS,
    META_FILE,
    SEGMENTATION_CLASSES,
    generate_shapes,
    shapes_paths,
)
from vlm.data.shapes import generate as generate_module
from vlm.data.shapes.captions import make_captions
from vlm.data.shapes.generate import image_rngs
from vlm.data.shapes.geometry import shape_mask
from vlm.data.shapes.scene import layout_scene, seen_objects
from vlm.data.shapes.vqa import make_questions

SMALL = dict(train_images=24, val_images=8, image_size=64, seed=3, classification_images_per_class=3,
             classification_val_images_per_class=2, classification_image_size=32)
SMALL_CLI = ['--train-images', '6', '--val-images', '2', '--image-size', '64', '--classification-train-per-class',
             '1', '--classification-val-per-class', '1', '--classification-image-size', '32']
SPLITS = ('train', 'val')
NUMBERS = {'one': 1, 'two': 2, 'three': 3, 'four': 4, 'five': 5}
PLURALS = {'circles': 'circle', 'crosses': 'cross', 'rings': 'ring', 'squares': 'square', 'stars': 'star',
           'triangles': 'triangle'}
COLOUR_RE = '|'.join(COLOURS)
SHAPE_RE = '|'.join(c['name'] for c in CATEGORIES)
PLURAL_RE = '|'.join(PLURALS)
# pycocotools' annToMask triggers numpy 2's __array__(copy=...) deprecation warning on every call
pytestmark = pytest.mark.filterwarnings('ignore:__array__ implementation:DeprecationWarning')


class Obj(NamedTuple):
    """An object as the instances JSON describes it: names, centroid of its decoded mask, the mask."""
    category: str
    colour: str
    x: float
    y: float
    mask: np.ndarray


@pytest.fixture(scope='module')
def dataset(tmp_path_factory) -> Path:
    return generate_shapes(tmp_path_factory.mktemp('shapes') / 'shapes', workers=1, **SMALL)


def _objects_by_image(root: Path, split: str) -> Dict[int, List[Obj]]:
    coco = COCO(str(shapes_paths(root, split)['instances']))
    names = {c['id']: c['name'] for c in coco.loadCats(coco.getCatIds())}
    objects = {}
    for image_id in coco.getImgIds():
        objects[image_id] = []
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=[image_id])):
            mask = coco.annToMask(ann).astype(bool)
            ys, xs = np.nonzero(mask)
            objects[image_id].append(Obj(names[ann['category_id']], ann['color'], xs.mean(), ys.mean(), mask))
    return objects


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _files(root: Path) -> Dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}


def test_layout_files_and_meta(dataset):
    meta = _load(dataset / META_FILE)
    assert meta['version'] == 1 and meta['generator'] == 'vlm.data.shapes' and meta['seed'] == 3
    assert meta['segmentation_classes'] == SEGMENTATION_CLASSES == ['background'] + [c['name'] for c in CATEGORIES]
    assert [c['id'] for c in meta['categories']] == [c['id'] for c in CATEGORIES]
    for split, count in (('train', 24), ('val', 8)):
        paths = shapes_paths(dataset, split)
        images = _load(paths['instances'])['images']
        assert len(images) == count == meta['counts'][split]['images']
        for image in images:
            assert image['file_name'] == f"{image['id']:012d}.png"
            rgb = Image.open(paths['images'] / image['file_name'])
            labels = Image.open(paths['segmentation'] / image['file_name'])
            assert rgb.mode == 'RGB' and labels.mode == 'L' and rgb.size == labels.size == (64, 64)
        assert _load(paths['captions'])['images'] == images
    train_ids = {i['id'] for i in _load(shapes_paths(dataset, 'train')['instances'])['images']}
    val_ids = {i['id'] for i in _load(shapes_paths(dataset, 'val')['instances'])['images']}
    assert min(train_ids) == 1 and not train_ids & val_ids


@pytest.mark.parametrize('split', SPLITS)
def test_instances_match_the_drawn_pixels(dataset, split):
    coco = COCO(str(shapes_paths(dataset, split)['instances']))
    category_ids = sorted(coco.getCatIds())
    assert len(category_ids) >= 5 and category_ids[-1] - category_ids[0] + 1 > len(category_ids)  # gaps
    annotations = coco.loadAnns(coco.getAnnIds())
    assert [a['id'] for a in annotations] == list(range(1, len(annotations) + 1))
    for index, image_id in enumerate(sorted(coco.getImgIds())):
        scene = layout_scene(image_rngs(3, split, index).layout, 64)  # the generator's own scene description
        image = np.asarray(Image.open(shapes_paths(dataset, split)['images'] / f'{image_id:012d}.png'), float)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
        assert len(anns) == len(scene.objects) <= 5
        for k, ann in enumerate(anns):
            mask = coco.annToMask(ann)
            np.testing.assert_array_equal(mask.astype(bool), scene.owner == k)
            ys, xs = np.nonzero(mask)
            assert ann['bbox'] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            assert all(isinstance(v, float) for v in ann['bbox'])
            assert ann['area'] == mask.sum() >= 30 and ann['iscrowd'] == 0
            assert ann['category_id'] in category_ids
            full = shape_mask(scene.objects[k], 64).sum()
            assert mask.sum() >= 0.4 * full
            mean_rgb = image[mask.astype(bool)].mean(0)
            nearest = min(COLOURS, key=lambda name: np.abs(mean_rgb - COLOURS[name]).sum())
            assert nearest == ann['color'] and np.abs(mean_rgb - COLOURS[ann['color']]).max() < 25


@pytest.mark.parametrize('split', SPLITS)
def test_label_maps_agree_with_instance_masks(dataset, split):
    objects = _objects_by_image(dataset, split)
    for image_id, objs in objects.items():
        labels = np.asarray(Image.open(shapes_paths(dataset, split)['segmentation'] / f'{image_id:012d}.png'))
        covered = np.zeros(labels.shape, int)
        for obj in objs:
            assert np.all(labels[obj.mask] == SEGMENTATION_CLASSES.index(obj.category))
            covered += obj.mask
        assert covered.max() <= 1  # visible masks do not overlap
        assert np.all(labels[covered == 0] == 0)


def _count(objs: List[Obj], colour=None, category=None) -> int:
    return sum((colour is None or o.colour == colour) and (category is None or o.category == category) for o in objs)


def _related(a: Obj, b: Obj, relation: str, margin: float) -> bool:
    offset = {'to the left of': b.x - a.x, 'to the right of': a.x - b.x, 'above': b.y - a.y, 'below': a.y - b.y}
    return offset[relation] > margin


def _in_region(obj: Obj, phrase: str, size: int) -> bool:
    third = size / 3
    checks = {'left': obj.x < third, 'right': obj.x > 2 * third, 'top': obj.y < third, 'bottom': obj.y > 2 * third,
              'center': third < obj.x < 2 * third and third < obj.y < 2 * third}
    return all(checks[word] for word in phrase.split() if word in checks)


def _check_caption(caption: str, objs: List[Obj], size: int) -> int:
    """Assert every claim the caption makes; return how many claims were checked."""
    claims = 0
    for number, colour, noun in re.findall(rf'\b(one|two|three|four|five) (?:({COLOUR_RE}) )?(\w+)', caption):
        category = PLURALS.get(noun, noun)
        if category in ('shape', 'shapes'):
            category = None
        assert noun in ('shape', 'shapes') or category in PLURALS.values(), caption
        assert (NUMBERS[number] == 1) == (noun == 'shape' or noun in PLURALS.values()), caption  # agreement
        assert _count(objs, colour or None, category) == NUMBERS[number], caption
        claims += 1
    for colour, category in re.findall(rf'\ba ({COLOUR_RE}) ({SHAPE_RE})\b', caption):
        assert _count(objs, colour, category) >= 1, caption
        claims += 1
    margin = 0.08 * size
    relations = 'to the left of|to the right of|above|below'
    pattern = rf'a ({COLOUR_RE}) ({SHAPE_RE}) (?:is )?({relations}) a ({COLOUR_RE}) ({SHAPE_RE})'
    for c1, s1, relation, c2, s2 in re.findall(pattern, caption):
        assert any(_related(a, b, relation, margin) for a in objs for b in objs
                   if (a.colour, a.category, b.colour, b.category) == (c1, s1, c2, s2)), caption
    regions = (r'in the (?:top|bottom) (?:left|right) corner|at the top|at the bottom|on the left|on the right'
               r'|in the center')
    for colour, category, phrase in re.findall(rf'a ({COLOUR_RE}) ({SHAPE_RE}) ({regions})', caption):
        assert any(_in_region(o, phrase, size) for o in objs if (o.colour, o.category) == (colour, category)), caption
    listed = re.fullmatch(r'from left to right: (.*)|(.*), from left to right', caption)
    if listed:
        items = re.findall(rf'a ({COLOUR_RE}) ({SHAPE_RE})', listed.group(1) or listed.group(2))
        ordered = sorted(objs, key=lambda o: o.x)
        assert items == [(o.colour, o.category) for o in ordered], caption
        assert all(b.x - a.x > margin for a, b in zip(ordered, ordered[1:])), caption
    mentioned = set(re.findall(rf'\b({COLOUR_RE}|{SHAPE_RE}|{PLURAL_RE})\b', caption))
    present = {o.colour for o in objs} | {o.category for o in objs}
    assert {PLURALS.get(word, word) for word in mentioned} <= present, caption
    return claims


@pytest.mark.parametrize('split', SPLITS)
def test_captions_are_true_and_varied(dataset, split):
    objects = _objects_by_image(dataset, split)
    captions = _load(shapes_paths(dataset, split)['captions'])['annotations']
    assert [c['id'] for c in captions] == list(range(1, len(captions) + 1))
    by_image = {image_id: [c['caption'] for c in captions if c['image_id'] == image_id] for image_id in objects}
    for image_id, texts in by_image.items():
        assert len(set(texts)) >= 3
        for caption in texts:
            claims = _check_caption(caption, objects[image_id], 64)
            if objects[image_id]:
                assert claims >= 1, caption  # every caption of a non-empty image states something checkable
            else:
                assert re.search(r'empty|no shapes|no objects|nothing but', caption), caption


def _expected_answer(question: str, objs: List[Obj], size: int) -> str:
    """The answer recomputed from the instances; fails on a question no pattern knows."""
    margin = 0.08 * size
    yes_no = {True: 'yes', False: 'no'}
    if m := re.fullmatch(rf'how many (?:({COLOUR_RE}) )?shapes are there\?', question):
        return str(_count(objs, colour=m.group(1)))
    if m := re.fullmatch(rf'how many ({PLURAL_RE}) are there\?', question):
        return str(_count(objs, category=PLURALS[m.group(1)]))
    if m := re.fullmatch(rf'what color is the ({SHAPE_RE})\?', question):
        (obj,) = [o for o in objs if o.category == m.group(1)]
        return obj.colour
    if m := re.fullmatch(rf'what shape is the ({COLOUR_RE}) object\?', question):
        (obj,) = [o for o in objs if o.colour == m.group(1)]
        return obj.category
    if m := re.fullmatch(rf'is there a (?:({COLOUR_RE}) )?({SHAPE_RE})\?', question):
        return yes_no[_count(objs, m.group(1), m.group(2)) > 0]
    pattern = rf'is the ({COLOUR_RE}) ({SHAPE_RE}) (left of|right of|above|below) the ({COLOUR_RE}) ({SHAPE_RE})\?'
    if m := re.fullmatch(pattern, question):
        (a,) = [o for o in objs if (o.colour, o.category) == m.group(1, 2)]
        (b,) = [o for o in objs if (o.colour, o.category) == m.group(4, 5)]
        axis_offset = a.x - b.x if m.group(3) in ('left of', 'right of') else a.y - b.y
        assert abs(axis_offset) > margin, question
        return yes_no[(axis_offset < 0) == (m.group(3) in ('left of', 'above'))]
    sides = {'left': lambda o: o.x, 'right': lambda o: -o.x, 'top': lambda o: o.y, 'bottom': lambda o: -o.y}
    m = re.fullmatch(r'what shape is (?:on|at) the (left|right|top|bottom)\?', question)
    n = re.fullmatch(r'what color is the (left|right|top|bottom)most shape\?', question)
    assert m or n, f'unknown question: {question}'
    ordered = sorted(objs, key=sides[(m or n).group(1)])
    assert len(ordered) >= 2 and sides[(m or n).group(1)](ordered[1]) - sides[(m or n).group(1)](ordered[0]) > margin
    if m:
        assert len(objs) == 2, question
        return ordered[0].category
    return ordered[0].colour


@pytest.mark.parametrize('split', SPLITS)
def test_vqa_answers_agree_with_instances(dataset, split):
    paths = shapes_paths(dataset, split)
    questions_file, annotations_file = _load(paths['vqa_questions']), _load(paths['vqa_annotations'])
    assert questions_file['task_type'] == 'Open-Ended' and questions_file['data_subtype'] == split
    assert questions_file['data_type'] == 'shapes' and annotations_file['data_subtype'] == split
    questions = {q['question_id']: q for q in questions_file['questions']}
    annotations = {a['question_id']: a for a in annotations_file['annotations']}
    assert len(questions) == len(questions_file['questions']) and questions.keys() == annotations.keys()
    objects = _objects_by_image(dataset, split)
    assert Counter(q['image_id'] for q in questions.values()) == {image_id: 5 for image_id in objects}
    for question_id, q in questions.items():
        ann = annotations[question_id]
        assert ann['image_id'] == q['image_id'] and question_id // 100 == q['image_id']
        answer = ann['multiple_choice_answer']
        assert ann['answers'] == [{'answer': answer, 'answer_confidence': 'yes', 'answer_id': k} for k in range(1, 11)]
        kind = 'number' if answer.isdigit() else 'yes/no' if answer in ('yes', 'no') else 'other'
        assert ann['answer_type'] == kind and ann['question_type'] and q['question'].startswith(ann['question_type'])
        assert answer == _expected_answer(q['question'], objects[q['image_id']], 64), q['question']


def test_scene_statistics_and_text_variety():
    """Over many 128 px scenes: the object count range, empty images, recognisable occlusion, balanced yes/no."""
    counts, answers, kinds, first_words = Counter(), Counter(), set(), set()
    for index in range(250):
        rngs = image_rngs(0, 'stats', index)
        scene = layout_scene(rngs.layout, 128)
        counts[len(scene.objects)] += 1
        for k, shape in enumerate(scene.objects):
            full, visible = shape_mask(shape, 128).sum(), (scene.owner == k).sum()
            assert visible >= max(30, 0.4 * full) and 16 <= shape.size <= 48
        seen = seen_objects(scene)
        captions = make_captions(rngs.text, seen, 128)
        assert len(set(captions)) >= 4
        first_words |= {c.split()[0] for c in captions}
        for qa in make_questions(rngs.text, seen, 128):
            kinds.add(qa.question_type)
            answers[qa.answer] += 1
    assert set(counts) == {0, 1, 2, 3, 4, 5} and 0.03 < counts[0] / 250 < 0.15
    assert 0.35 < answers['yes'] / (answers['yes'] + answers['no']) < 0.65
    assert kinds == {'how many', 'what color is the', 'what shape is the', 'is there a', 'is the', 'what shape is'}
    assert {'0', '1', '2', '3'} <= set(answers) and len(first_words) >= 8


def test_classification_tree(dataset):
    meta = _load(dataset / META_FILE)
    assert meta['classification']['classes'] == CLASSIFICATION_CLASSES == sorted(c['name'] for c in CATEGORIES)
    for split, per_class in (('train', 3), ('val', 2)):
        root = shapes_paths(dataset, split)['classification']
        assert sorted(p.name for p in root.iterdir()) == CLASSIFICATION_CLASSES
        for name in CLASSIFICATION_CLASSES:
            files = sorted((root / name).iterdir())
            assert [f.name for f in files] == [f'{name}_{i:06d}.png' for i in range(1, per_class + 1)]
            for file in files:
                image = np.asarray(Image.open(file))
                assert image.shape == (32, 32, 3)
                saturated = (image.max(-1).astype(int) - image.min(-1)) > 100  # the object, not the background
                assert saturated.mean() > 0.04


def test_same_seed_same_bytes_any_workers_other_seed_differs_with_progress(dataset, tmp_path):
    reference = _files(dataset)
    reported = []
    again = generate_shapes(tmp_path / 'again', workers=2, **SMALL, progress=lambda done, total: reported.append(
        (done, total)))
    assert _files(again) == reference
    jobs = reported[-1][1]  # one progress report per image drawn (its masks come with it), in order, to the last
    drawn = [path for path in again.rglob('*.png') if 'segmentation' not in path.parts]
    assert reported == [(done, jobs) for done in range(1, jobs + 1)] and jobs == len(drawn)
    other = _files(generate_shapes(tmp_path / 'other', workers=1, **{**SMALL, 'seed': 4}))
    assert other.keys() == reference.keys()
    changed = [name for name in reference if other[name] != reference[name]]
    assert len(changed) > 0.9 * len(reference)


def test_cli_writes_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / 'data' / 'shapes'
    assert cli.main(['shapes', '--out', str(out), *SMALL_CLI]) == 0
    assert 'wrote' in capsys.readouterr().out and (out / META_FILE).is_file()
    before = _files(out)
    assert cli.main(['shapes', '--out', str(out), *SMALL_CLI, '--seed', '1']) == 1
    assert 'already holds a shapes dataset' in capsys.readouterr().err and _files(out) == before
    assert cli.main(['shapes', '--out', str(out), *SMALL_CLI, '--seed', '1', '--force']) == 0
    assert _files(out) != before and _load(out / META_FILE)['seed'] == 1
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'notes.txt').write_text('mine')
    assert cli.main(['shapes', '--out', str(other), *SMALL_CLI]) == 1
    assert 'not an empty directory' in capsys.readouterr().err and (other / 'notes.txt').read_text() == 'mine'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['data', 'other']  # no temporary directories left


def test_failed_generation_leaves_no_output(tmp_path, monkeypatch):
    out = tmp_path / 'shapes'
    generate_shapes(out, **SMALL)
    before = _files(out)

    def broken_write_json(path, document):
        raise RuntimeError('disk full')

    monkeypatch.setattr(generate_module, 'write_json', broken_write_json)
    with pytest.raises(RuntimeError, match='disk full'):
        generate_shapes(tmp_path / 'fresh', **SMALL)
    with pytest.raises(RuntimeError, match='disk full'):
        generate_shapes(out, force=True, **SMALL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['shapes']  # no 'fresh', no temporary directory
    assert _files(out) == before  # the complete dataset survives a failed --force run


@pytest.mark.parametrize('split', SPLITS)
def test_conversations_agree_with_the_vqa_files_and_the_instances(dataset, split):
    """Each image's dialogue is its five VQA questions with their answers; each two-image dialogue's answers are
    the counts of the instances JSON (an independent reference); the file reads as LLaVA conversations."""
    from vlm.data.conversations import read_conversations

    paths = shapes_paths(dataset, split)
    dialogues = _load(paths['conversations'])
    questions = _load(paths['vqa_questions'])['questions']
    answers = {a['question_id']: a['multiple_choice_answer'] for a in _load(paths['vqa_annotations'])['annotations']}
    objects = _objects_by_image(dataset, split)
    single = [d for d in dialogues if isinstance(d['image'], str)]
    pairs = [d for d in dialogues if isinstance(d['image'], list)]
    assert len(single) == len(objects) and len(pairs) == (len(objects) + 2) // 4
    for dialogue in single:
        image_id = int(dialogue['image'][:-4])
        asked = [(q['question'], answers[q['question_id']]) for q in questions if q['image_id'] == image_id]
        turns = dialogue['conversations']
        assert [t['from'] for t in turns] == ['human', 'gpt'] * 5 and turns[0]['value'].startswith('<image>\n')
        assert [(h['value'].replace('<image>\n', ''), g['value']) for h, g in zip(turns[::2], turns[1::2])] == asked
    for dialogue in pairs:
        first, second = (int(name[:-4]) for name in dialogue['image'])
        assert second == first + 1 and (first - min(objects)) % 4 == 0
        compare, count = dialogue['conversations'][0::2], dialogue['conversations'][1::2]
        assert compare[0]['value'].startswith('<image>\n<image>\nwhich of the two images has more ')
        noun = PLURALS[re.search(f'more ({PLURAL_RE})', compare[0]['value']).group(1)]
        counts = [sum(o.category == noun for o in objects[image_id]) for image_id in (first, second)]
        more = 'first' if counts[0] > counts[1] else 'second' if counts[1] > counts[0] else 'neither'
        assert count[0]['value'] == more
        which = re.search(r'in the (first|second) image', compare[1]['value']).group(1)
        assert count[1]['value'] == str(counts[('first', 'second').index(which)])
    read = read_conversations(paths['conversations'], paths['images'])
    assert len(read) == len(dialogues) and all(len(c.images) in (1, 2) for c in read)
