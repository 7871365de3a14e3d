"""YOLO-World's data side on DOTA: ``MultiModalDataset`` over ``DOTADataset`` with rotated boxes,
and several aerial datasets with different vocabularies trained at once (a ``ConcatDataset``).

Everything runs the real pipeline on tiny PNG images and DOTA label files this module writes.
Each object's class is known from its centre (every centre is unique), which the pipeline here
does not move, so each packed box can be traced back to its own line of its label file.

Planted bugs these tests were checked to fail on (one at a time, then reverted):

- ``RandomLoadText`` preferring its own ``text_path`` vocabulary over the sample's ``texts``
  (``_class_texts`` with the two sources swapped), with ``text_path`` set to A's file:
  ``test_concat_datasets_keep_their_own_vocabularies``;
- ``MultiModalDataset`` keeping the class texts of the first instance built (a class-level
  cache): ``test_concat_datasets_keep_their_own_vocabularies``;
- ``RandomLoadText`` not remapping labels to the sampled texts: the first two tests;
- ``RandomLoadText`` drawing negatives among all classes, positives included: the first two;
- ``MultiModalDataset`` handing Mosaic the first wrapper built as ``results['dataset']``
  (mosaic partners from another dataset):
  ``test_concat_mosaic_draws_partners_from_the_same_dataset``;
- ``DOTADataset`` keeping an ignored object under a base label instead of leaving it out:
  ``test_base_training_on_dota_v1_files_sees_no_novel_object_or_text``.
"""

import json
import os.path as osp
import random

import cv2
import numpy as np
import pytest
from mmengine.registry import DefaultScope

from ai4rs.registry import DATASETS
from ai4rs.structures.bbox import RotatedBoxes
from tests.conftest import REPO_ROOT

DOTA_V1_TEXTS = osp.join(REPO_ROOT, 'configs', '_base_', 'texts', 'dota_v1_class_texts.json')
SIZE = 64


def rotated_polygon(cx, cy, w, h, angle_deg):
    """The 4 corners (8 floats) of a w x h rectangle centred at (cx, cy), turned by angle_deg."""
    return [float(v) for v in cv2.boxPoints(((cx, cy), (w, h), angle_deg)).reshape(-1)]


def write_dota(root, objects_per_image):
    """``root/images/{id}.png`` (SIZE x SIZE) and ``root/annfiles/{id}.txt``.

    Args:
        objects_per_image (dict): image id -> list of (cx, cy, w, h, angle, class name).
    """
    (root / 'images').mkdir(parents=True)
    (root / 'annfiles').mkdir()
    for img_id, objects in objects_per_image.items():
        img = np.full((SIZE, SIZE, 3), 100, np.uint8)
        lines = ['imagesource:GoogleEarth', 'gsd:0.5']
        for cx, cy, w, h, angle, name in objects:
            poly = rotated_polygon(cx, cy, w, h, angle)
            cv2.fillPoly(img, [np.round(np.reshape(poly, (4, 2))).astype(np.int32)], (0, 200, 0))
            lines.append(' '.join(f'{v:.3f}' for v in poly) + f' {name} 0')
        cv2.imwrite(str(root / 'images' / f'{img_id}.png'), img)
        (root / 'annfiles' / f'{img_id}.txt').write_text('\n'.join(lines) + '\n')


def pipeline(num_neg, max_num, text_path=None):
    return [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, box_type='qbox'),
        dict(type='ConvertBoxType', box_type_mapping=dict(gt_bboxes='rbox')),
        dict(
            type='RandomLoadText',
            text_path=text_path,
            num_neg_samples=num_neg,
            max_num_samples=max_num,
            padding_to_max=True,
            padding_value='',
        ),
        dict(
            type='PackDetInputs',
            meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'texts'),
        ),
    ]


def multimodal_cfg(root, class_text_path, pipe, classes=None):
    dataset = dict(
        type='DOTADataset',
        data_root=str(root),
        ann_file='annfiles/',
        data_prefix=dict(img_path='images/'),
    )
    if classes is not None:
        dataset['metainfo'] = dict(classes=classes)
    return dict(
        type='MultiModalDataset',
        dataset=dataset,
        class_text_path=class_text_path,
        test_mode=False,
        pipeline=pipe,
    )


def box_objects(sample, objects_per_image):
    """The object (cx, cy, w, h, angle, class name) of each packed box, found from its centre."""
    found = []
    for cx, cy in sample.gt_instances.bboxes.tensor[:, :2].tolist():
        hits = [
            o
            for o in objects_per_image[sample.metainfo['img_id']]
            if abs(o[0] - cx) < 0.01 and abs(o[1] - cy) < 0.01
        ]
        assert len(hits) == 1, (sample.metainfo['img_id'], cx, cy)
        found.append(hits[0])
    return found


# (cx, cy, w, h, angle, DOTA class): every centre is unique within its image
DOTA_V1_OBJECTS = {
    'P0001': [
        (12, 14, 10, 6, 30, 'small-vehicle'),
        (40, 20, 14, 8, -20, 'large-vehicle'),
        (30, 48, 12, 12, 45, 'storage-tank'),
        (52, 50, 9, 5, 70, 'small-vehicle'),
    ],
    'P0002': [
        (20, 20, 24, 8, 10, 'ship'),
        (45, 40, 16, 16, 0, 'harbor'),
    ],
    'P0003': [
        (16, 40, 20, 12, 60, 'tennis-court'),
        (44, 16, 12, 10, -45, 'plane'),
        (46, 46, 10, 10, 15, 'roundabout'),
    ],
}
# written out by hand: the text of each DOTA class in dota_v1_class_texts.json
DOTA_V1_WORDS = {
    'small-vehicle': 'small vehicle',
    'large-vehicle': 'large vehicle',
    'storage-tank': 'storage tank',
    'ship': 'ship',
    'harbor': 'harbor',
    'tennis-court': 'tennis court',
    'plane': 'plane',
    'roundabout': 'roundabout',
}


def test_multimodal_dota_packs_rotated_boxes_and_their_texts(tmp_path):
    write_dota(tmp_path, DOTA_V1_OBJECTS)
    with open(DOTA_V1_TEXTS) as f:
        shipped = json.load(f)
    random.seed(0)
    with DefaultScope.overwrite_default_scope('ai4rs'):
        ds = DATASETS.build(
            multimodal_cfg(tmp_path, DOTA_V1_TEXTS, pipeline(num_neg=(2, 6), max_num=10))
        )
        assert len(ds) == 3
        assert ds.get_data_info(0)['texts'] == shipped
        for _ in range(4):
            for idx in range(len(ds)):
                packed = ds[idx]
                sample = packed['data_samples']
                assert tuple(packed['inputs'].shape) == (3, SIZE, SIZE)
                bboxes, labels = sample.gt_instances.bboxes, sample.gt_instances.labels
                assert isinstance(bboxes, RotatedBoxes)
                assert bboxes.tensor.shape == (len(DOTA_V1_OBJECTS[sample.img_id]), 5)
                texts = sample.texts
                assert len(texts) == 10  # padded to max_num_samples
                assert int(labels.max()) < len(texts)
                objects = box_objects(sample, DOTA_V1_OBJECTS)
                expected = [DOTA_V1_WORDS[o[5]] for o in objects]
                assert [texts[int(lb)] for lb in labels] == expected
                # the other prompts are other DOTA classes (or padding)
                others = [t for i, t in enumerate(texts) if i not in set(labels.tolist())]
                shipped_words = {entry[0] for entry in shipped}
                assert all(t == '' or (t in shipped_words and t not in expected) for t in others)
                # each rotated box is the rectangle written (w, h up to the angle convention)
                for o, box in zip(objects, bboxes.tensor.tolist()):
                    assert sorted(box[2:4]) == pytest.approx(sorted(o[2:4]), abs=0.01)


# Two aerial datasets with different class lists and vocabularies (synonyms included).
A_CLASSES = ('small-vehicle', 'large-vehicle', 'swimming-pool', 'tennis-court')
A_TEXTS = [
    ['small vehicle', 'car'],
    ['large vehicle', 'truck'],
    ['swimming pool'],
    ['tennis court'],
]
B_CLASSES = ('ship', 'harbor', 'storage-tank', 'plane')
B_TEXTS = [['ship', 'boat'], ['harbor'], ['storage tank', 'oil tank'], ['plane', 'airplane']]
A_OBJECTS = {
    'a1': [(12, 12, 8, 4, 20, 'small-vehicle'), (40, 40, 20, 20, 0, 'swimming-pool')],
    'a2': [(20, 30, 14, 6, -30, 'large-vehicle'), (48, 16, 8, 4, 60, 'small-vehicle')],
    'a3': [(30, 30, 30, 14, 10, 'tennis-court')],
}
B_OBJECTS = {
    'b1': [(20, 20, 24, 6, 15, 'ship'), (46, 44, 20, 16, 0, 'harbor')],
    'b2': [(16, 44, 12, 12, 0, 'storage-tank'), (44, 16, 16, 14, 45, 'plane')],
    'b3': [(32, 32, 10, 4, -60, 'ship'), (10, 10, 8, 8, 0, 'storage-tank')],
    'b4': [(30, 20, 18, 14, 30, 'plane')],
}


def write_texts(path, texts):
    path.write_text(json.dumps(texts))
    return str(path)


def test_concat_datasets_keep_their_own_vocabularies(tmp_path):
    write_dota(tmp_path / 'A', A_OBJECTS)
    write_dota(tmp_path / 'B', B_OBJECTS)
    a_path = write_texts(tmp_path / 'a_texts.json', A_TEXTS)
    b_path = write_texts(tmp_path / 'b_texts.json', B_TEXTS)
    # text -> (dataset, class name); no text is in both vocabularies
    owner = {t: ('A', c) for c, ts in zip(A_CLASSES, A_TEXTS) for t in ts}
    owner.update({t: ('B', c) for c, ts in zip(B_CLASSES, B_TEXTS) for t in ts})
    assert len(owner) == sum(map(len, A_TEXTS + B_TEXTS))

    # one train pipeline for both, whose RandomLoadText names A's file as a fallback
    # vocabulary (for a dataset without texts): the sample's own texts must win
    pipe = pipeline((1, 3), 4, text_path=a_path)
    cfg = dict(
        type='ConcatDataset',
        datasets=[
            multimodal_cfg(tmp_path / 'A', a_path, pipe, classes=A_CLASSES),
            multimodal_cfg(tmp_path / 'B', b_path, pipe, classes=B_CLASSES),
        ],
        ignore_keys=['classes', 'palette'],
    )
    random.seed(1234)
    rng = np.random.default_rng(1234)
    seen = {'A': set(), 'B': set()}
    with DefaultScope.overwrite_default_scope('ai4rs'):
        concat = DATASETS.build(cfg)
        assert len(concat) == len(A_OBJECTS) + len(B_OBJECTS)
        for _ in range(150):
            idx = int(rng.integers(len(concat)))
            sample = concat[idx]['data_samples']
            own = 'A' if sample.img_id.startswith('a') else 'B'
            assert own == ('A' if idx < len(A_OBJECTS) else 'B')
            texts = [t for t in sample.texts if t != '']
            assert len(sample.texts) == 4
            # every prompt is one of this dataset's own texts, never the other's
            assert {owner[t][0] for t in texts} == {own}, (own, sample.texts)
            # a class appears once among the prompts
            assert len({owner[t][1] for t in texts}) == len(texts)
            labels = sample.gt_instances.labels.tolist()
            names = [o[5] for o in box_objects(sample, {**A_OBJECTS, **B_OBJECTS})]
            assert len(labels) == len(names) > 0
            # each positive is a text of that box's own class
            for label, name in zip(labels, names):
                assert owner[sample.texts[label]] == (own, name)
            # the negatives are other classes of the same vocabulary
            positives = {sample.texts[lb] for lb in labels}
            for t in texts:
                if t not in positives:
                    assert owner[t][0] == own and owner[t][1] not in names
                    seen[own].add(owner[t][1])
    # over the draws, negatives came from every class of each vocabulary
    assert seen == {'A': set(A_CLASSES), 'B': set(B_CLASSES)}


def test_concat_mosaic_draws_partners_from_the_same_dataset(tmp_path):
    """``MultiModalMosaic`` merges the texts of its four images: they must all come from the
    sample's own dataset (``results['dataset']`` is its own ``MultiModalDataset``)."""
    write_dota(tmp_path / 'A', A_OBJECTS)
    write_dota(tmp_path / 'B', B_OBJECTS)
    a_path = write_texts(tmp_path / 'a_texts.json', A_TEXTS)
    b_path = write_texts(tmp_path / 'b_texts.json', B_TEXTS)
    owner = {t: 'A' for ts in A_TEXTS for t in ts}
    owner.update({t: 'B' for ts in B_TEXTS for t in ts})
    pipe = pipeline((0, 0), 4)
    pipe.insert(
        3,
        dict(
            type='MultiModalMosaic',
            img_scale=(SIZE, SIZE),
            pre_transform=pipe[:3],
        ),
    )
    cfg = dict(
        type='ConcatDataset',
        datasets=[
            multimodal_cfg(tmp_path / 'A', a_path, pipe, classes=A_CLASSES),
            multimodal_cfg(tmp_path / 'B', b_path, pipe, classes=B_CLASSES),
        ],
        ignore_keys=['classes', 'palette'],
    )
    random.seed(99)
    rng = np.random.default_rng(99)
    with DefaultScope.overwrite_default_scope('ai4rs'):
        concat = DATASETS.build(cfg)
        for _ in range(40):
            idx = int(rng.integers(len(concat)))
            sample = concat[idx]['data_samples']
            own = 'A' if idx < len(A_OBJECTS) else 'B'
            assert sample.img_id.startswith(own.lower())
            assert isinstance(sample.gt_instances.bboxes, RotatedBoxes)
            texts = [t for t in sample.texts if t != '']
            # no negatives asked for: the prompts are the classes of the four images
            assert texts and {owner[t] for t in texts} == {own}, (own, sample.texts)
            labels = sample.gt_instances.labels.tolist()
            assert len(set(labels)) == len(texts)


def test_base_training_on_dota_v1_files_sees_no_novel_object_or_text(tmp_path):
    """The base / novel protocol: DOTA-v1.0 label files, the base classes learnt, the others
    ignored; the prompts and boxes of every sample are base classes only."""
    write_dota(tmp_path, DOTA_V1_OBJECTS)
    base = ('small-vehicle', 'ship', 'plane', 'harbor')
    novel = tuple(c for c in DOTA_V1_WORDS if c not in base) + ('bridge', 'helicopter')
    texts_path = write_texts(tmp_path / 'base_texts.json', [[DOTA_V1_WORDS[c]] for c in base])
    cfg = multimodal_cfg(tmp_path, texts_path, pipeline((4, 4), 4), classes=base)
    cfg['dataset']['ignore_classes'] = novel
    cfg['dataset']['filter_cfg'] = dict(filter_empty_gt=True)
    random.seed(5)
    with DefaultScope.overwrite_default_scope('ai4rs'):
        ds = DATASETS.build(cfg)
        # P0003 keeps its plane; every image has a base object
        assert len(ds) == 3
        for _ in range(3):
            for idx in range(len(ds)):
                sample = ds[idx]['data_samples']
                objects = box_objects(sample, DOTA_V1_OBJECTS)
                expected = [o for o in DOTA_V1_OBJECTS[sample.img_id] if o[5] in base]
                assert objects == expected
                # all four base classes are prompted (positives + negatives), nothing else
                assert sorted(sample.texts) == sorted(DOTA_V1_WORDS[c] for c in base)
                labels = sample.gt_instances.labels.tolist()
                assert [sample.texts[lb] for lb in labels] == [DOTA_V1_WORDS[o[5]] for o in objects]
