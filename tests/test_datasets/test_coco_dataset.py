"""CocoDataset, YOLOv5CocoDataset, BatchShapePolicy, MultiModalDataset, class texts, the
synthetic COCO generator."""

import filecmp
import json
import logging
import os
import os.path as osp

import numpy as np
import pytest
from mmengine.logging import MMLogger

from ai4rs.datasets import (
    COCO_CLASSES,
    BatchShapePolicy,
    CocoDataset,
    MultiModalDataset,
    YOLOv5CocoDataset,
    load_class_texts,
)
from ai4rs.datasets.preparation.synthetic_coco import CLASSES as SHAPE_CLASSES
from ai4rs.datasets.preparation.synthetic_coco import PALETTE as SHAPE_PALETTE
from ai4rs.datasets.preparation.synthetic_coco import generate_dataset

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
RLE = {'size': [60, 80], 'counts': 'abc'}


def gt_json():
    """Three images; categories in json order cat(id 10), dog(id 2), bird(id 7)."""
    return dict(
        images=[
            dict(id=1, file_name='a.jpg', width=80, height=60),
            dict(id=5, file_name='b.jpg', width=100, height=20),
            dict(id=9, file_name='c.jpg', width=50, height=50),
        ],
        categories=[dict(id=10, name='cat'), dict(id=2, name='dog'), dict(id=7, name='bird')],
        annotations=[
            dict(
                id=1,
                image_id=1,
                category_id=2,
                bbox=[1, 2, 10, 20],
                area=200,
                iscrowd=0,
                segmentation=[[1, 2, 11, 2, 11, 22]],
            ),
            dict(
                id=2,
                image_id=1,
                category_id=10,
                bbox=[5, 5, 30, 30],
                area=900,
                iscrowd=1,
                segmentation=RLE,
            ),
            dict(id=3, image_id=1, category_id=7, bbox=[0, 0, 0.5, 10], area=5, iscrowd=0),
            dict(id=4, image_id=1, category_id=7, bbox=[90, 0, 10, 10], area=100, iscrowd=0),
            dict(
                id=5, image_id=5, category_id=7, bbox=[2, 2, 4, 4], area=16, iscrowd=0, ignore=True
            ),
            dict(id=6, image_id=9, category_id=10, bbox=[2, 3, 4, 5], area=0, iscrowd=0),
        ],
    )


def write_dataset(root, data=None, images=True):
    os.makedirs(osp.join(root, 'imgs'), exist_ok=True)
    data = gt_json() if data is None else data
    with open(osp.join(root, 'ann.json'), 'w') as f:
        json.dump(data, f)
    if images:
        for img in data.get('images', []):
            open(osp.join(root, 'imgs', img['file_name']), 'wb').close()
    return str(root)


def build(root, **kwargs):
    kwargs.setdefault('metainfo', dict(classes=('dog', 'cat', 'bird')))
    kwargs.setdefault('serialize_data', False)  # mmengine's serialization runs gc.collect()
    return CocoDataset(data_root=root, ann_file='ann.json', data_prefix=dict(img='imgs/'), **kwargs)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_data_list_label_mapping_and_skips(tmp_path):
    root = write_dataset(tmp_path)
    logger = MMLogger.get_current_instance()
    records = _Records()
    logger.addHandler(records)
    try:
        ds = build(root)
    finally:
        logger.removeHandler(records)
    assert ds.cat_ids == [2, 10, 7]  # metainfo order, matched by name
    assert len(ds) == 3
    d0 = ds.get_data_info(0)
    assert d0['img_id'] == 1 and (d0['height'], d0['width']) == (60, 80)
    assert d0['img_path'] == osp.join(root, 'imgs', 'a.jpg') and d0['seg_map_path'] is None
    # ann 3 (w < 1) and ann 4 (outside the 80-wide image) skipped; 1 and 2 kept in json order
    assert d0['instances'] == [
        dict(bbox=[1, 2, 11, 22], bbox_label=0, ignore_flag=0, mask=[[1, 2, 11, 2, 11, 22]]),
        dict(bbox=[5, 5, 35, 35], bbox_label=1, ignore_flag=1, mask=RLE),
    ]
    assert ds.get_data_info(1)['instances'] == []  # ignore=True dropped (not counted)
    assert ds.get_data_info(2)['instances'] == []  # area 0
    logged = [m for m in records.messages if 'degenerate' in m]
    assert len(logged) == 1 and 'skipped 3 annotations' in logged[0]
    assert 'annotation ids 3, 4, 6' in logged[0] and 'ann.json' in logged[0]
    assert ds.get_cat_ids(0) == [0, 1]


def test_subset_of_classes_and_metainfo_defaults(tmp_path):
    root = write_dataset(tmp_path)
    ds = build(root, metainfo=dict(classes=('bird', 'cat')))
    assert ds.get_data_info(0)['instances'][0]['bbox_label'] == 1  # dog ann dropped
    assert len(ds.get_data_info(0)['instances']) == 1
    assert len(CocoDataset.METAINFO['classes']) == 80
    assert len(CocoDataset.METAINFO['palette']) == 80


def _ids(ds):
    return [ds.get_data_info(i)['img_id'] for i in range(len(ds))]


def test_filter_cfg(tmp_path):
    root = write_dataset(tmp_path)
    # image 5 has only an ignore=True annotation, image 9 only a degenerate one: both count
    # as "with annotations" for filter_empty_gt (mmdet uses the json's category->image map)
    data = gt_json()
    data['images'].append(dict(id=11, file_name='d.jpg', width=40, height=40))
    write_dataset(tmp_path, data)
    assert len(build(root)) == 4
    assert _ids(build(root, filter_cfg=dict(filter_empty_gt=True))) == [1, 5, 9]
    assert _ids(build(root, filter_cfg=dict(min_size=32))) == [1, 9, 11]
    both = build(root, filter_cfg=dict(filter_empty_gt=True, min_size=32))
    assert _ids(both) == [1, 9]
    test = build(root, filter_cfg=dict(filter_empty_gt=True, min_size=32), test_mode=True)
    assert len(test) == 4  # no filtering in test mode


@pytest.mark.parametrize(
    'mutate,error,message',
    [
        (lambda d: d.pop('images'), ValueError, r'ann.json: not a COCO detection annotation file'),
        (lambda d: d.pop('categories'), ValueError, r"no \['categories'\] list"),
        (lambda d: d.pop('annotations'), ValueError, r"no \['annotations'\] list"),
        (
            lambda d: d['annotations'][2].update(image_id=42),
            ValueError,
            r'annotation 3 names image_id 42, which is not in "images"',
        ),
        (
            lambda d: d['annotations'][1].update(category_id=99),
            ValueError,
            r'annotation 2 names category_id 99, which is not in "categories"',
        ),
        (
            lambda d: d['annotations'][0].update(bbox=[1, 2, float('nan'), 3]),
            ValueError,
            r'annotation 1: bbox must be 4 finite numbers',
        ),
        (lambda d: d['annotations'][1].update(id=1), ValueError, r'annotation id 1 is not unique'),
        (
            lambda d: d['categories'][1].update(name='wolf'),
            ValueError,
            r"classes \['dog'\] of CocoDataset metainfo are not category names",
        ),
    ],
)
def test_bad_json(tmp_path, mutate, error, message):
    data = gt_json()
    mutate(data)
    root = write_dataset(tmp_path, data)
    with pytest.raises(error, match=message):
        build(root)


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match='COCO annotation file not found.*nope.json'):
        CocoDataset(ann_file=str(tmp_path / 'nope.json'))
    (tmp_path / 'broken').mkdir()
    (tmp_path / 'broken' / 'ann.json').write_text('{"images": [')
    with pytest.raises(ValueError, match='ann.json: not a valid json file'):
        CocoDataset(data_root=str(tmp_path / 'broken'), ann_file='ann.json')
    root = write_dataset(tmp_path, images=False)
    open(osp.join(root, 'imgs', 'b.jpg'), 'wb').close()
    with pytest.raises(FileNotFoundError) as info:
        build(root)
    msg = str(info.value)
    assert msg.startswith('CocoDataset (') and '2 of 3 image files do not exist' in msg
    assert 'a.jpg' in msg and 'c.jpg' in msg and 'b.jpg' not in msg
    assert len(build(root, check_img_files=False)) == 3


def test_test_set_without_annotations(tmp_path):
    data = gt_json()
    data.pop('annotations')
    root = write_dataset(tmp_path, data)
    ds = build(root, test_mode=True)
    assert len(ds) == 3
    assert all(ds.get_data_info(i)['instances'] == [] for i in range(3))


def test_batch_shape_policy_by_hand():
    data = [
        dict(width=640, height=480),
        dict(width=400, height=800),
        dict(width=500, height=500),
        dict(width=300, height=200),
    ]
    out = BatchShapePolicy(batch_size=2, img_size=640, size_divisor=32, extra_pad_ratio=0.5)(data)
    # sorted by h/w: 0.667 (300x200), 0.75 (640x480), 1.0, 2.0
    assert [(d['width'], d['height']) for d in out] == [
        (300, 200),
        (640, 480),
        (500, 500),
        (400, 800),
    ]
    # batch 0: max ratio 0.75 < 1 -> [0.75, 1] * 640 / 32 + 0.5 -> ceil [15.5, 20.5] -> 16, 21
    np.testing.assert_array_equal(out[0]['batch_shape'], [512, 672])
    np.testing.assert_array_equal(out[1]['batch_shape'], [512, 672])
    # batch 1: ratios 1.0 and 2.0 -> neither all < 1 nor all > 1 -> [1, 1] -> 21 * 32
    np.testing.assert_array_equal(out[2]['batch_shape'], [672, 672])


def test_yolov5_coco_dataset(tmp_path):
    root = write_dataset(tmp_path)
    ds = YOLOv5CocoDataset(
        data_root=root,
        ann_file='ann.json',
        data_prefix=dict(img='imgs/'),
        metainfo=dict(classes=('dog', 'cat', 'bird')),
        test_mode=True,
        serialize_data=False,
        batch_shapes_cfg=dict(type='BatchShapePolicy', batch_size=2, img_size=64, size_divisor=32),
    )
    assert _ids(ds) == [5, 1, 9]  # sorted by h/w: 0.2, 0.75, 1.0
    assert all('batch_shape' in ds.get_data_info(i) for i in range(3))
    train = YOLOv5CocoDataset(
        data_root=root,
        ann_file='ann.json',
        data_prefix=dict(img='imgs/'),
        metainfo=dict(classes=('dog', 'cat', 'bird')),
        serialize_data=False,
    )
    assert train[0]['dataset'] is train  # for Mosaic / MixUp


def test_shipped_coco_class_texts():
    path = osp.join(REPO, 'configs', '_base_', 'texts', 'coco_class_texts.json')
    texts = load_class_texts(path, num_classes=80)
    assert texts == [[c] for c in COCO_CLASSES]
    assert texts[0] == ['person'] and texts[-1] == ['toothbrush']


def test_class_text_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.json'):
        load_class_texts(str(tmp_path / 'missing.json'))
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps([['a'], [], ['c']]))
    with pytest.raises(ValueError, match='bad.json: entry 1 must be a non-empty list'):
        load_class_texts(str(bad))
    bad.write_text(json.dumps({'a': 1}))
    with pytest.raises(ValueError, match='holds a json list'):
        load_class_texts(str(bad))
    bad.write_text(json.dumps([['a'], ['b']]))
    with pytest.raises(ValueError, match='2 class texts, but the dataset has 3 classes'):
        load_class_texts(str(bad), num_classes=3)


def test_multimodal_dataset(tmp_path):
    root = write_dataset(tmp_path)
    texts = tmp_path / 'texts.json'
    texts.write_text(json.dumps([['dog', 'puppy'], ['cat'], ['bird']]))
    inner = dict(
        type='CocoDataset',
        data_root=root,
        ann_file='ann.json',
        data_prefix=dict(img='imgs/'),
        metainfo=dict(classes=('dog', 'cat', 'bird')),
        serialize_data=False,
    )
    mm = MultiModalDataset(dataset=inner, class_text_path=str(texts))
    assert len(mm) == 3 and mm.metainfo['classes'] == ('dog', 'cat', 'bird')
    sample = mm[0]
    assert sample['texts'] == [['dog', 'puppy'], ['cat'], ['bird']]
    assert sample['dataset'] is mm  # the inner dataset trains: mixing transforms draw from mm
    assert mm.get_data_info(0)['instances'][0]['bbox_label'] == 0
    test = MultiModalDataset(dataset=dict(inner, test_mode=True), class_text_path=str(texts))
    assert 'dataset' not in test[0]
    with pytest.raises(ValueError, match='2 class texts, but the dataset has 3'):
        texts.write_text(json.dumps([['dog'], ['cat']]))
        MultiModalDataset(dataset=inner, class_text_path=str(texts))
    with pytest.raises(TypeError, match='dict or a BaseDataset'):
        MultiModalDataset(dataset=[1, 2])


# ----------------------------------------------------------------- the synthetic generator
@pytest.fixture(scope='module')
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp('syn')
    a, b, c = root / 'a', root / 'b', root / 'c'
    generate_dataset(str(a), num_train=6, num_val=2, img_size=96, seed=3)
    generate_dataset(str(b), num_train=6, num_val=2, img_size=96, seed=3)
    generate_dataset(str(c), num_train=6, num_val=2, img_size=96, seed=4)
    return a, b, c


def _all_files(root):
    return sorted(osp.relpath(osp.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_generator_is_deterministic(synthetic):
    a, b, c = synthetic
    files = _all_files(a)
    assert files == _all_files(b)
    assert 'annotations/instances_train.json' in files and 'train/000006.jpg' in files
    assert all(filecmp.cmp(a / f, b / f, shallow=False) for f in files)
    assert not filecmp.cmp(
        a / 'annotations/instances_train.json',
        c / 'annotations/instances_train.json',
        shallow=False,
    )
    # same arguments again: nothing rewritten; other arguments: an error, not a mix
    generate_dataset(str(a), num_train=6, num_val=2, img_size=96, seed=3)
    with pytest.raises(FileExistsError, match='other settings'):
        generate_dataset(str(a), num_train=7, num_val=2, img_size=96, seed=3)


def test_generator_annotations_are_valid(synthetic):
    from shapely.geometry import Polygon

    a = synthetic[0]
    with open(a / 'annotations/instances_train.json') as f:
        data = json.load(f)
    assert [c['name'] for c in data['categories']] == list(SHAPE_CLASSES)
    assert data['annotations']
    import cv2

    for ann in data['annotations']:
        pts = np.asarray(ann['segmentation'][0]).reshape(-1, 2)
        x, y, w, h = ann['bbox']
        # tight box around the polygon
        np.testing.assert_allclose([x, y, x + w, y + h], [*pts.min(0), *pts.max(0)], atol=0.011)
        poly = Polygon(pts)
        assert poly.is_valid
        np.testing.assert_allclose(ann['area'], poly.area, rtol=1e-3)
        img_info = next(i for i in data['images'] if i['id'] == ann['image_id'])
        assert pts.min() >= 0 and pts[:, 0].max() <= img_info['width']
        assert pts[:, 1].max() <= img_info['height']
        # the drawn colour at the shape's representative point is the class colour
        img = cv2.imread(str(a / 'train' / img_info['file_name']))
        px, py = poly.representative_point().coords[0]
        bgr = img[int(py), int(px)].astype(int)
        rgb = np.array(SHAPE_PALETTE[ann['category_id'] - 1])
        if min(w, h) > 8:  # tiny stars blur into the ground
            assert np.abs(bgr[::-1] - rgb).max() < 60
    # the dataset reads it with nothing skipped, texts fit MultiModalDataset
    mm = MultiModalDataset(
        dataset=dict(
            type='CocoDataset',
            data_root=str(a),
            ann_file='annotations/instances_train.json',
            data_prefix=dict(img='train/'),
            metainfo=dict(classes=SHAPE_CLASSES),
        ),
        class_text_path=str(a / 'texts/class_texts.json'),
    )
    assert sum(len(mm.get_data_info(i)['instances']) for i in range(len(mm))) == len(
        data['annotations']
    )
    assert mm[0]['texts'] == [[c] for c in SHAPE_CLASSES]


def test_generator_tool_rectangular(tmp_path):
    import importlib.util

    path = osp.join(REPO, 'tools/data/coco/make_synthetic_coco.py')
    spec = importlib.util.spec_from_file_location('make_synthetic_coco', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / 'rect'
    tool.main(
        [
            str(out),
            '--num-train',
            '2',
            '--num-val',
            '1',
            '--img-size',
            '80',
            '64',
            '--img-suffix',
            'png',
        ]
    )
    with open(out / 'annotations/instances_val.json') as f:
        data = json.load(f)
    assert data['images'] == [dict(id=1, file_name='000001.png', width=80, height=64)]
    import cv2

    assert cv2.imread(str(out / 'val/000001.png')).shape == (64, 80, 3)
