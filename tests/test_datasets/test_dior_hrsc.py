"""DIOR-R and HRSC2016: XML files parsed to the expected boxes, the split files, the class
tables, bad input named, and the two rotated YOLOX recipes training and validating.

Every file is written here (tiny XML files and images in ``tmp_path``). The expected boxes
are computed by hand in the comments: HRSC boxes ``(cx, cy, w, h, a)`` give the corners
``c +- w/2 (cos a, sin a) +- h/2 (-sin a, cos a)``, and after ``ConvertBoxType`` the le90
box has ``w >= h`` and its angle in ``[-pi/2, pi/2)``.

Planted bugs these tests were checked to fail on (one at a time, then reverted):

- HRSC corners built with w and h swapped: ``test_hrsc_corners_and_le90_angles...``;
- the Class_ID table numbered from 1: ``test_hrsc_one_class_31_classes_difficult_and_head``;
- DIOR's ignore flag at ``difficult >= diff_thr`` (everything ignored by default), or class
  names matched case-sensitively: ``test_dior_parses_split_classes_polygons_and_difficult``;
- the HRSC dataset config's second evaluator in '11points' mode:
  ``test_hrsc_recipe_reports_map07_and_map12_from_dotametric``;
- DIOR's size read from the image as (height, width):
  ``test_dior_size_from_the_image_when_the_xml_has_none``; ``bbox_min_size`` not applied:
  ``test_dior_parses_split_classes_polygons_and_difficult``;
- the DIOR recipe training on train.txt twice instead of train + val:
  ``test_recipe_trains_one_iteration_and_validates[dior]``.
"""

import math
import os.path as osp
from pprint import pformat

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import DefaultScope

from ai4rs.datasets import DIOR_CLASSES, HRSC_CLASSES, DIORDataset, HRSCDataset
from ai4rs.datasets.class_texts import load_class_texts
from ai4rs.datasets.hrsc import hrsc_class_id_map
from ai4rs.utils.config import load_config
from tests.conftest import REPO_ROOT

RECIPES = osp.join(REPO_ROOT, 'configs', 'rotated_yolox')
DIOR_RECIPE = osp.join(RECIPES, 'rotated_yolox_s_300e_dior_le90.py')
HRSC_RECIPE = osp.join(RECIPES, 'rotated_yolox_s_300e_hrsc_le90.py')
HALF_PI = math.pi / 2


# ----------------------------------------------------------------------------- DIOR-R files
def dior_object(name, polygon=None, hbox=None, difficult=0):
    """An ``<object>`` of a DIOR-R XML file (``<robndbox>`` corners and / or ``<bndbox>``)."""
    parts = [f'<object><name>{name}</name><difficult>{difficult}</difficult>']
    if polygon is not None:
        fields = ('x_left_top', 'y_left_top', 'x_right_top', 'y_right_top')
        fields += ('x_right_bottom', 'y_right_bottom', 'x_left_bottom', 'y_left_bottom')
        parts.append(
            '<robndbox>'
            + ''.join(f'<{f}>{v}</{f}>' for f, v in zip(fields, polygon))
            + '</robndbox>'
        )
    if hbox is not None:
        fields = ('xmin', 'ymin', 'xmax', 'ymax')
        parts.append(
            '<bndbox>' + ''.join(f'<{f}>{v}</{f}>' for f, v in zip(fields, hbox)) + '</bndbox>'
        )
    return ''.join(parts) + '</object>'


def dior_xml(objects, size=(64, 48)):
    return (
        f'<annotation><filename>x.jpg</filename><size><width>{size[0]}</width>'
        f'<height>{size[1]}</height><depth>3</depth></size>{"".join(objects)}</annotation>'
    )


# image id -> objects; '00003' is on disk but in no split file used by the tests
DIOR_IMAGES = {
    '00001': [
        # an upright 10 x 30 box: le90 (15, 25, 30, 10, -pi/2)
        dior_object('Airplane', [10, 10, 20, 10, 20, 40, 10, 40], hbox=[10, 10, 20, 40]),
        dior_object('expressway-service-area', [30, 5, 60, 5, 60, 15, 30, 15], difficult=1),
    ],
    '00002': [dior_object('windmill', [40, 20, 50, 30, 40, 40, 30, 30], hbox=[30, 20, 50, 40])],
    '00003': [dior_object('dam', [1, 1, 9, 1, 9, 9, 1, 9])],
}


def write_dior(root, images=DIOR_IMAGES, splits=None, img_size=(64, 48)):
    """``root/ImageSets/Main/{split}.txt``, ``root/JPEGImages-trainval/{id}.jpg`` and
    ``root/Annotations/Oriented Bounding Boxes/{id}.xml``."""
    splits = splits or {'train': ['00002', '00001'], 'val': ['00001'], 'test': ['00001', '00002']}
    (root / 'ImageSets' / 'Main').mkdir(parents=True)
    for split, ids in splits.items():
        (root / 'ImageSets' / 'Main' / f'{split}.txt').write_text('\n'.join(ids) + '\n')
    ann = root / 'Annotations' / 'Oriented Bounding Boxes'
    ann.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for folder in ('JPEGImages-trainval', 'JPEGImages-test'):
        (root / folder).mkdir()
        for img_id in images:
            img = rng.integers(60, 120, (img_size[1], img_size[0], 3), dtype=np.uint8)
            cv2.imwrite(str(root / folder / f'{img_id}.jpg'), img)
    for img_id, objects in images.items():
        (ann / f'{img_id}.xml').write_text(dior_xml(objects, img_size))
    return ann


def dior(root, split='train', **kwargs):
    kwargs.setdefault('data_prefix', dict(img_path='JPEGImages-trainval'))
    return DIORDataset(data_root=str(root), ann_file=f'ImageSets/Main/{split}.txt', **kwargs)


def test_dior_parses_split_classes_polygons_and_difficult(tmp_path):
    write_dior(tmp_path)
    ds = dior(tmp_path)
    assert ds.metainfo['classes'] == DIOR_CLASSES and len(DIOR_CLASSES) == 20
    # the split file's ids, in its order ('00003' is not listed)
    assert [d['img_id'] for d in ds] == ['00002', '00001']
    d1 = ds.get_data_info(1)
    assert d1['img_path'] == osp.join(str(tmp_path), 'JPEGImages-trainval', '00001.jpg')
    assert d1['xml_path'].endswith(osp.join('Oriented Bounding Boxes', '00001.xml'))
    assert (d1['width'], d1['height']) == (64, 48)
    inst = d1['instances']
    assert [i['bbox'] for i in inst] == [
        [10, 10, 20, 10, 20, 40, 10, 40],
        [30, 5, 60, 5, 60, 15, 30, 15],
    ]
    # 'Airplane' matched in lower case; class indices in mmrotate's order
    assert [i['bbox_label'] for i in inst] == [0, 6]
    assert [i['difficult'] for i in inst] == [0, 1]
    assert [i['ignore_flag'] for i in inst] == [0, 0]  # nothing ignored by default
    assert ds.get_cat_ids(0) == [19]  # windmill
    # diff_thr=0: the difficult object is kept, flagged ignored
    flagged = dior(tmp_path, diff_thr=0).get_data_info(1)['instances']
    assert [i['ignore_flag'] for i in flagged] == [0, 1]
    # filter_cfg bbox_min_size (training): boxes whose shorter side is below it are ignored
    # (00001's two boxes have a 10 px short side, 00002's diamond 10 sqrt 2 = 14.1 px)
    small = dior(tmp_path, filter_cfg=dict(bbox_min_size=12))
    assert [[i['ignore_flag'] for i in d['instances']] for d in small] == [[0], [1, 1]]
    # ann_type='hbb' reads <bndbox> (xmin, ymin), (xmax, ymin), (xmax, ymax), (xmin, ymax) and
    # skips an object without one
    hbb = dior(tmp_path, ann_type='hbb')
    assert [i['bbox'] for i in hbb.get_data_info(1)['instances']] == [
        [10, 10, 20, 10, 20, 40, 10, 40]
    ]
    assert [i['bbox'] for i in hbb.get_data_info(0)['instances']] == [
        [30, 20, 50, 20, 50, 40, 30, 40]
    ]


def test_dior_size_from_the_image_when_the_xml_has_none(tmp_path):
    ann = write_dior(tmp_path, img_size=(40, 24))
    xml = ann / '00002.xml'
    xml.write_text(
        dior_xml(DIOR_IMAGES['00002']).replace('<size>', '<nosize>').replace('</size>', '</nosize>')
    )
    d = dior(tmp_path).get_data_info(0)
    assert d['img_id'] == '00002' and (d['width'], d['height']) == (40, 24)
    (tmp_path / 'JPEGImages-trainval' / '00002.jpg').unlink()
    with pytest.raises(FileNotFoundError, match=r'00002.xml gives no image size .*00002.jpg'):
        dior(tmp_path)


def test_dior_boxes_through_the_pipeline_are_le90(tmp_path):
    write_dior(tmp_path)
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, box_type='qbox'),
        dict(type='ConvertBoxType', box_type_mapping=dict(gt_bboxes='rbox')),
    ]
    with DefaultScope.overwrite_default_scope('ai4rs'):
        ds = dior(tmp_path, pipeline=pipeline)
        boxes = {d: ds[i]['gt_bboxes'].tensor.double() for i, d in enumerate(['00002', '00001'])}
    # the upright 10 (x) x 30 (y) box: w < h in the image, so le90 swaps: w 30, h 10, -pi/2
    torch.testing.assert_close(
        boxes['00001'][0], torch.tensor([15, 25, 30, 10, -HALF_PI], dtype=torch.float64)
    )
    torch.testing.assert_close(
        boxes['00001'][1], torch.tensor([45, 10, 30, 10, 0], dtype=torch.float64)
    )
    # the diamond (40, 20) (50, 30) (40, 40) (30, 30): a square of side 10 sqrt 2 at 45 degrees
    # (a square: le90 adds pi/2 to the edge direction pi/4 or -pi/4 and wraps, giving -pi/4)
    s = 10 * math.sqrt(2)
    torch.testing.assert_close(
        boxes['00002'][0], torch.tensor([40, 30, s, s, -math.pi / 4], dtype=torch.float64)
    )


# --------------------------------------------------------------------------- HRSC2016 files
def hrsc_object(box, class_id='100000001', difficult=0, head=(0, 0)):
    cx, cy, w, h, a = box
    return (
        f'<HRSC_Object><Object_ID>1</Object_ID><Class_ID>{class_id}</Class_ID>'
        f'<difficult>{difficult}</difficult><mbox_cx>{cx}</mbox_cx><mbox_cy>{cy}</mbox_cy>'
        f'<mbox_w>{w}</mbox_w><mbox_h>{h}</mbox_h><mbox_ang>{a!r}</mbox_ang>'
        f'<header_x>{head[0]}</header_x><header_y>{head[1]}</header_y></HRSC_Object>'
    )


def hrsc_xml(objects, size=(120, 90)):
    return (
        f'<HRSC_Image><Img_ID>1</Img_ID><Img_SizeWidth>{size[0]}</Img_SizeWidth>'
        f'<Img_SizeHeight>{size[1]}</Img_SizeHeight><HRSC_Objects>{"".join(objects)}'
        '</HRSC_Objects></HRSC_Image>'
    )


# (cx, cy, w, h, a) -> the le90 box after ConvertBoxType, by hand
HRSC_BOXES = [
    # w > h, a = 0: unchanged; corners (70, 45) (70, 35) (30, 35) (30, 45)
    ((50, 40, 40, 10, 0.0), (50, 40, 40, 10, 0.0)),
    # w < h, a = 0: swapped, a + pi/2 = pi/2 wraps to -pi/2; corners (105, 75) (105, 45)
    # (95, 45) (95, 75)
    ((100, 60, 10, 30, 0.0), (100, 60, 30, 10, -HALF_PI)),
    # w < h, a = 0.01: pi/2 + 0.01 wraps to -pi/2 + 0.01
    ((60, 50, 8, 24, 0.01), (60, 50, 24, 8, -HALF_PI + 0.01)),
    # w > h, a = pi/2 - 0.01: inside [-pi/2, pi/2), unchanged
    ((30, 60, 24, 8, HALF_PI - 0.01), (30, 60, 24, 8, HALF_PI - 0.01)),
    # w > h, a = pi/2: the range is open at +pi/2, so -pi/2
    ((80, 20, 20, 6, HALF_PI), (80, 20, 20, 6, -HALF_PI)),
]
HRSC_IDS = ['100000001', '100000022', '100000033', '100000005', '100000002']


def write_hrsc(root, xmls=None, splits=None, img_size=(120, 90)):
    """``root/ImageSets/{split}.txt``, ``root/FullDataSet/AllImages/{id}.bmp`` and
    ``root/FullDataSet/Annotations/{id}.xml``."""
    if xmls is None:
        objects = [
            hrsc_object(box, cid, difficult=int(i == 1), head=(i, 2 * i))
            for i, ((box, _), cid) in enumerate(zip(HRSC_BOXES, HRSC_IDS))
        ]
        xmls = {
            '100000640': hrsc_xml(objects[:3], img_size),
            '100000641': hrsc_xml(objects[3:], img_size),
        }
    splits = splits or {'trainval': list(xmls), 'test': list(xmls)}
    (root / 'ImageSets').mkdir(parents=True)
    for split, ids in splits.items():
        (root / 'ImageSets' / f'{split}.txt').write_text('\n'.join(ids) + '\n')
    full = root / 'FullDataSet'
    (full / 'AllImages').mkdir(parents=True)
    (full / 'Annotations').mkdir()
    rng = np.random.default_rng(0)
    for img_id, text in xmls.items():
        (full / 'Annotations' / f'{img_id}.xml').write_text(text)
        img = rng.integers(60, 120, (img_size[1], img_size[0], 3), dtype=np.uint8)
        cv2.imwrite(str(full / 'AllImages' / f'{img_id}.bmp'), img)
    return full


def hrsc(root, split='trainval', **kwargs):
    return HRSCDataset(
        data_root=str(root),
        ann_file=f'ImageSets/{split}.txt',
        data_prefix=dict(sub_data_root='FullDataSet/'),
        **kwargs,
    )


def test_hrsc_corners_and_le90_angles_at_the_boundaries(tmp_path):
    write_hrsc(tmp_path)
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, box_type='qbox'),
        dict(type='ConvertBoxType', box_type_mapping=dict(gt_bboxes='rbox')),
    ]
    with DefaultScope.overwrite_default_scope('ai4rs'):
        ds = hrsc(tmp_path, pipeline=pipeline)
        assert ds.metainfo['classes'] == ('ship',)
        d0 = ds.get_data_info(0)
        assert d0['img_path'] == osp.join(
            str(tmp_path), 'FullDataSet', 'AllImages', '100000640.bmp'
        )
        assert (d0['width'], d0['height']) == (120, 90)
        polys = [i['bbox'] for i in d0['instances']]
        np.testing.assert_allclose(polys[0], [70, 45, 70, 35, 30, 35, 30, 45], atol=1e-9)
        np.testing.assert_allclose(polys[1], [105, 75, 105, 45, 95, 45, 95, 75], atol=1e-9)
        boxes = torch.cat([ds[i]['gt_bboxes'].tensor for i in range(2)]).double()
    expected = torch.tensor([le90 for _, le90 in HRSC_BOXES], dtype=torch.float64)
    torch.testing.assert_close(boxes, expected, atol=1e-4, rtol=0)
    angles = boxes[:, 4]
    assert bool(((angles >= -HALF_PI - 1e-6) & (angles < HALF_PI)).all())
    assert bool((boxes[:, 2] >= boxes[:, 3]).all())


def test_hrsc_one_class_31_classes_difficult_and_head(tmp_path):
    write_hrsc(tmp_path)
    one = hrsc(tmp_path)
    assert one.metainfo['classes'] == ('ship',)
    assert [i['bbox_label'] for d in one for i in d['instances']] == [0] * 5
    assert [i['difficult'] for d in one for i in d['instances']] == [0, 1, 0, 0, 0]
    assert [i['ignore_flag'] for d in one for i in d['instances']] == [0] * 5
    assert [i['head'] for i in one.get_data_info(1)['instances']] == [[3, 6], [4, 8]]
    assert [i['ignore_flag'] for d in hrsc(tmp_path, diff_thr=0) for i in d['instances']] == [
        0,
        1,
        0,
        0,
        0,
    ]
    many = hrsc(tmp_path, classwise=True)
    assert many.metainfo['classes'] == HRSC_CLASSES and len(HRSC_CLASSES) == 31
    # Class_ID 1000000xx: 01 ship 0, 22 Hovercraft 20 (21 is no class), 33 Invincible-class 30,
    # 05 Nimitz 4, 02 aircraft carrier 1
    labels = [i['bbox_label'] for d in many for i in d['instances']]
    assert labels == [0, 20, 30, 4, 1]
    assert [HRSC_CLASSES[lb] for lb in labels] == [
        'ship',
        'Hovercraft',
        'Invincible-class',
        'Nimitz',
        'aircraft carrier',
    ]
    table = hrsc_class_id_map()
    assert len(table) == 31 and '100000021' not in table and '100000023' not in table
    assert table['100000020'] == 19 and table['100000024'] == 21


# ------------------------------------------------------------------------------- bad input
def test_bad_dior_input_is_named(tmp_path):
    ann = write_dior(tmp_path)
    with pytest.raises(FileNotFoundError, match='no file .*nosuch.txt'):
        DIORDataset(data_root=str(tmp_path), ann_file='nosuch.txt')
    (tmp_path / 'ImageSets' / 'Main' / 'dup.txt').write_text('00001\n\n00002\n00001\n')
    with pytest.raises(ValueError, match=r'dup.txt, line 4: .*00001.* twice \(first on line 1\)'):
        dior(tmp_path, 'dup')
    (tmp_path / 'ImageSets' / 'Main' / 'empty.txt').write_text('\n')
    with pytest.raises(ValueError, match='empty.txt.* lists no image id'):
        dior(tmp_path, 'empty')
    (tmp_path / 'ImageSets' / 'Main' / 'gone.txt').write_text('00001\n00009\n')
    with pytest.raises(FileNotFoundError, match=r'(?s)1 of 2 annotation files .*00009.xml'):
        dior(tmp_path, 'gone')
    good = (ann / '00002.xml').read_text()
    (ann / '00002.xml').write_text(good.replace('</annotation>', ''))
    with pytest.raises(ValueError, match=r'00002.xml, line 1, column \d+: malformed XML'):
        dior(tmp_path)
    (ann / '00002.xml').write_text(good.replace('windmill', 'wind-mill'))
    with pytest.raises(ValueError, match=r"00002.xml, object 1: unknown class 'wind-mill'"):
        dior(tmp_path)
    (ann / '00002.xml').write_text(good.replace('<x_right_top>50', '<x_right_top>5O'))
    with pytest.raises(
        ValueError,
        match=r"00002.xml, object 1, <robndbox>: <x_right_top> must be a number, got '5O'",
    ):
        dior(tmp_path)
    (ann / '00002.xml').write_text(good.replace('<y_left_bottom>30</y_left_bottom>', ''))
    with pytest.raises(
        ValueError, match=r'00002.xml, object 1, <robndbox>: <y_left_bottom> is missing'
    ):
        dior(tmp_path)
    (ann / '00002.xml').write_text(good)
    with pytest.raises(ValueError, match="ann_type must be 'obb' or 'hbb'"):
        dior(tmp_path, ann_type='rbox')
    with pytest.raises(RuntimeError, match='file_client_args is deprecated'):
        dior(tmp_path, file_client_args=dict(backend='disk'))
    (tmp_path / 'JPEGImages-trainval' / '00001.jpg').unlink()
    dior(tmp_path)  # no pipeline: no image is read, none is checked
    with pytest.raises(FileNotFoundError, match=r'(?s)DIORDataset: 1 of 2 image files .*00001.jpg'):
        dior(tmp_path, pipeline=[dict(type='LoadImageFromFile')])


def test_bad_hrsc_input_is_named(tmp_path):
    full = write_hrsc(tmp_path)
    xml = full / 'Annotations' / '100000641.xml'
    good = xml.read_text()
    xml.write_text(good.replace('100000005', '100000021'))
    hrsc(tmp_path)  # one class: Class_ID is not read
    with pytest.raises(
        ValueError, match=r"100000641.xml, HRSC_Object 1: unknown Class_ID '100000021'"
    ):
        hrsc(tmp_path, classwise=True)
    xml.write_text(good.replace('<mbox_w>24</mbox_w>', '<mbox_w>wide</mbox_w>'))
    with pytest.raises(
        ValueError, match=r"100000641.xml, HRSC_Object 1: <mbox_w> must be a number, got 'wide'"
    ):
        hrsc(tmp_path)
    xml.write_text(good.replace('<mbox_ang>', '<mbox_ang>9'))  # 91.5...: degrees, not radians
    with pytest.raises(
        ValueError, match=r'100000641.xml, HRSC_Object 1: <mbox_ang> must be an angle in radians'
    ):
        hrsc(tmp_path)
    xml.write_text(good.replace('<Img_SizeHeight>90</Img_SizeHeight>', ''))
    with pytest.raises(ValueError, match=r'100000641.xml: <Img_SizeHeight> is missing'):
        hrsc(tmp_path)
    xml.write_text(good[:-20])
    with pytest.raises(ValueError, match=r'100000641.xml, line 1, column \d+: malformed XML'):
        hrsc(tmp_path)
    xml.write_text(good)
    (full / 'AllImages' / '100000640.bmp').unlink()
    with pytest.raises(
        FileNotFoundError, match=r'(?s)HRSCDataset: 1 of 2 image files .*100000640.bmp'
    ):
        hrsc(tmp_path, pipeline=[dict(type='LoadImageFromFile')])


# --------------------------------------------------------------------------------- recipes
def test_hrsc_recipe_reports_map07_and_map12_from_dotametric():
    """The recipe's two evaluators on a hand case: 2 ships, one found exactly (score 0.9) and
    nothing else. Recall 1/2 at precision 1: VOC07 averages the precision at recall 0, 0.1,
    ..., 1.0, six of the eleven points being 1, so 6/11; the area under the curve is 1/2."""
    from mmengine.evaluator import Evaluator

    from ai4rs.structures.bbox import RotatedBoxes
    from ai4rs.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    cfg = load_config(HRSC_RECIPE)
    assert [e['eval_mode'] for e in cfg.val_evaluator] == ['11points', 'area']
    with DefaultScope.overwrite_default_scope('ai4rs'):
        evaluator = Evaluator(list(cfg.val_evaluator))
    evaluator.dataset_meta = dict(classes=('ship',))
    gt = torch.tensor([[50.0, 40, 40, 10, 0], [20, 20, 30, 8, 0.5]])
    sample = dict(
        gt_instances=dict(bboxes=RotatedBoxes(gt), labels=torch.tensor([0, 0])),
        ignored_instances=dict(
            bboxes=RotatedBoxes(torch.zeros(0, 5)), labels=torch.zeros(0, dtype=torch.long)
        ),
        pred_instances=dict(
            bboxes=RotatedBoxes(gt[:1]), scores=torch.tensor([0.9]), labels=torch.tensor([0])
        ),
    )
    evaluator.process([sample])
    metrics = evaluator.evaluate(1)
    assert metrics['hrsc07/AP50'] == pytest.approx(6 / 11, abs=1e-3)
    assert metrics['hrsc12/AP50'] == pytest.approx(0.5, abs=1e-3)


class Recorder(Hook):
    priority = 'LOWEST'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.outputs = {k: float(v.detach()) for k, v in outputs.items()}
        self.batch = data_batch

    def after_val_epoch(self, runner, metrics=None):
        self.metrics = dict(metrics)


SHRINK_800 = {(800, 800): (64, 64), (1600, 1600): (128, 128), (800, 512): (64, 48)}


def shrink(node, table=SHRINK_800):
    """Every image scale of ``table`` in a config node replaced by its small one (default:
    (800, 800) -> (64, 64), (1600, 1600) -> (128, 128), (800, 512) -> (64, 48))."""
    if isinstance(node, dict):
        return {k: shrink(v, table) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        key = tuple(node)
        if len(key) == 2 and all(isinstance(v, int) for v in key) and key in table:
            return type(node)(table[key])
        return type(node)(shrink(v, table) for v in node)
    return node


@pytest.mark.parametrize('recipe', [DIOR_RECIPE, HRSC_RECIPE], ids=['dior', 'hrsc'])
def test_recipe_trains_one_iteration_and_validates(recipe, tmp_path, monkeypatch):
    """The recipe, changed only in data root, batch 2, no workers, image scales / 12.5, one
    epoch, no checkpoint, score threshold 0: one training iteration on the files written
    here through its own pipeline (finite losses, rotated ground truth), then validation with
    its own evaluator(s)."""
    from ai4rs.engine.runner import build_runner
    from ai4rs.utils import register_all_modules

    monkeypatch.setattr(Config, 'pretty_text', property(lambda self: pformat(self.to_dict())))
    register_all_modules(init_default_scope=False)
    data_root = tmp_path / 'data'
    is_dior = recipe == DIOR_RECIPE
    if is_dior:
        write_dior(data_root, img_size=(64, 64))
    else:
        write_hrsc(data_root, img_size=(96, 64))
    cfg = load_config(recipe)
    num_classes = 20 if is_dior else 1
    assert cfg.model.bbox_head.num_classes == num_classes
    if is_dior:
        texts = load_class_texts(osp.join(REPO_ROOT, 'configs/_base_/texts/dior_class_texts.json'))
        assert len(texts) == len(DIOR_CLASSES)
        assert [t[0] for t in texts][6] == 'expressway service area'
        assert [t[0] for t in texts][10] == 'ground track field'
        assert [d.ann_file for d in cfg.train_dataloader.dataset.datasets] == [
            'ImageSets/Main/train.txt',
            'ImageSets/Main/val.txt',
        ]
    cfg.work_dir = str(tmp_path / 'work')
    for key in ('train_dataloader', 'val_dataloader'):
        loader = cfg[key]
        loader.batch_size, loader.num_workers = 2, 0
        loader.persistent_workers, loader.pin_memory = False, False
        sets = (
            loader.dataset.datasets if loader.dataset.type == 'ConcatDataset' else [loader.dataset]
        )
        for ds in sets:
            ds.data_root = str(data_root) + '/'
        cfg[key] = shrink(loader.to_dict())
    cfg.model = shrink(cfg.model.to_dict())
    cfg.custom_hooks = shrink([h.to_dict() for h in cfg.custom_hooks])
    cfg.train_cfg.max_epochs = 1
    cfg.train_cfg.val_interval = 1
    cfg.train_cfg.dynamic_intervals = None
    cfg.default_hooks.checkpoint.save_last = False
    cfg.model.test_cfg.score_thr = 0.0
    cfg.randomness = dict(seed=0)
    cfg.visualizer.name = f'visualizer:{tmp_path}'
    runner = build_runner(cfg)
    recorder = Recorder()
    runner.register_hook(recorder)
    runner.train()
    # DIOR-R trains on its train (2 images) and val (1) splits: 3 samples, 2 iterations of 2
    assert len(runner.train_dataloader.dataset) == (3 if is_dior else 2)
    assert runner.iter == (2 if is_dior else 1)
    assert {'loss', 'loss_cls', 'loss_bbox', 'loss_obj'} <= set(recorder.outputs)
    assert all(math.isfinite(v) for v in recorder.outputs.values()), recorder.outputs
    for img, sample in zip(recorder.batch['inputs'], recorder.batch['data_samples']):
        assert tuple(img.shape[1:]) == (64, 64)
        assert sample.gt_instances.bboxes.tensor.shape[1] == 5
        assert set(sample.gt_instances.labels.tolist()) <= set(range(num_classes))
    if is_dior:
        assert 0.0 <= recorder.metrics['dota/AP50'] <= 1.0, recorder.metrics
    else:
        assert {'hrsc07/AP50', 'hrsc12/AP50'} <= set(recorder.metrics), recorder.metrics
        assert all(0.0 <= recorder.metrics[k] <= 1.0 for k in ('hrsc07/AP50', 'hrsc12/AP50'))
