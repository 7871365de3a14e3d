"""Transforms keep boxes on their objects.

Objects are drawn as filled, rotated rectangles of distinct colours on a black
image; image and boxes go through the transform together, and the boxes must
still cover the pixels of their object (and, for rotated / quadrilateral boxes,
be covered by them). Boxes are rasterised here from their raw tensors with the
documented conventions (rbox corners from cx, cy, w, h, clockwise angle), not
with the library's converters.
"""

import copy
import math

import cv2
import numpy as np
import pytest
import torch

from ai4rs.datasets.transforms import (
    CachedMixUp,
    CachedMosaic,
    ConvertBoxType,
    FilterAnnotations,
    LoadAnnotations,
    PackDetInputs,
    Pad,
    RandomCrop,
    RandomFlip,
    RandomResize,
    RandomRotate,
    Resize,
    Rotate,
    YOLOXHSVRandomAug,
)
from ai4rs.registry import TRANSFORMS
from ai4rs.structures.bbox import RotatedBoxes

COLORS = np.array(
    [
        (0, 0, 255),
        (0, 255, 0),
        (255, 0, 0),
        (0, 255, 255),
        (255, 0, 255),
        (255, 255, 0),
        (255, 255, 255),
        (0, 128, 255),
        (255, 128, 0),
        (128, 0, 255),
        (0, 255, 128),
        (128, 255, 0),
    ],
    dtype=np.float64,
)


# --------------------------------------------------------------------------- geometry
def rbox_corners(cx, cy, w, h, t):
    """(4, 2) corners of a rotated box, pixel-corner coordinates, t clockwise (y down)."""
    c, s = math.cos(t), math.sin(t)
    v1 = np.array([w / 2 * c, w / 2 * s])
    v2 = np.array([-h / 2 * s, h / 2 * c])
    ctr = np.array([cx, cy])
    return np.stack([ctr + v1 + v2, ctr + v1 - v2, ctr - v1 - v2, ctr - v1 + v2])


def box_polygons(boxes):
    """(N, 4, 2) polygons of a box object, from its raw tensor."""
    t = boxes.tensor.detach().double().numpy()
    if t.shape[1] == 4:
        x1, y1, x2, y2 = t.T
        return np.stack(
            [
                np.stack([x1, y1], 1),
                np.stack([x2, y1], 1),
                np.stack([x2, y2], 1),
                np.stack([x1, y2], 1),
            ],
            1,
        )
    if t.shape[1] == 5:
        return np.stack([rbox_corners(*row) for row in t]) if len(t) else np.zeros((0, 4, 2))
    return t.reshape(-1, 4, 2)


def raster(shape, polygon):
    """Boolean mask of a polygon given in pixel-corner coordinates."""
    mask = np.zeros(shape[:2], np.uint8)
    pts = np.round((np.asarray(polygon) - 0.5) * 16).astype(np.int32)  # cv2: pixel centres
    cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def color_mask(img, color, tol=60):
    return np.abs(img.astype(np.float64) - color).max(-1) < tol


def check_boxes_on_objects(img, boxes, labels, scale=1.0, tight=True, min_cover=0.8):
    """Each object's pixels lie in the (1-px dilated) union of its boxes; with
    ``tight`` each box is mostly covered by its object's pixels."""
    polys = box_polygons(boxes)
    kernel = np.ones((3, 3), np.uint8)
    for label in np.unique(labels):
        obj = color_mask(img, COLORS[label] * scale)
        union = np.zeros(img.shape[:2], bool)
        for poly in polys[labels == label]:
            mask = raster(img.shape, poly)
            union |= mask
            if tight and mask.sum() > 20:
                cover = (obj & mask).sum() / mask.sum()
                assert cover > min_cover, f'box of label {label} covered only {cover:.2f}'
        dilated = cv2.dilate(union.astype(np.uint8), kernel).astype(bool)
        outside = (obj & ~dilated).sum()
        assert outside == 0, f'{outside} pixels of object {label} lie outside its boxes'
        assert obj.sum() > 0


def box_colour_cover(img, boxes, labels, tol=60):
    """Per box, the share of its pixels (outside boxes of other labels; boxes of 20 px or less
    skipped) whose colour is its object's, plain or blended 50/50 by a mix-up with black or
    the 114 padding. Boxes cut by mosaic cells or crops cover less than all, so callers
    compare rates over many boxes (and against wrong boxes) rather than each box."""
    masks = [raster(img.shape, poly) for poly in box_polygons(boxes)]
    covers = []
    for k, (mask, label) in enumerate(zip(masks, labels)):
        others = np.zeros(img.shape[:2], bool)
        for k2, (mask2, label2) in enumerate(zip(masks, labels)):
            if k2 != k and label2 != label:
                others |= mask2
        region = mask & ~others
        if region.sum() <= 20:
            continue
        colour = np.zeros(img.shape[:2], bool)
        for alpha in (1.0, 0.5):
            for background in (0, 114):
                colour |= color_mask(img, COLORS[label] * alpha + (1 - alpha) * background, tol)
        covers.append((colour & region).sum() / region.sum())
    return np.asarray(covers)


# -------------------------------------------------------------------------- fixtures
def draw_scene(objects, shape=(120, 160), label_offset=0):
    """A black image with filled rotated rectangles; returns (img, instances)."""
    img = np.zeros(shape + (3,), np.uint8)
    instances = []
    for i, (cx, cy, w, h, deg) in enumerate(objects):
        label = i + label_offset
        corners = rbox_corners(cx, cy, w, h, math.radians(deg))
        pts = np.round((corners - 0.5) * 16).astype(np.int32)
        cv2.fillPoly(img, [pts], COLORS[label].tolist(), lineType=cv2.LINE_8, shift=4)
        instances.append(
            dict(bbox=corners.reshape(-1).tolist(), bbox_label=label, ignore_flag=int(i == 1))
        )
    return img, instances


SCENE = [(40, 35, 44, 20, 30), (110, 40, 30, 16, -60), (70, 90, 50, 24, 0), (130, 95, 24, 24, 45)]


def load(objects=SCENE, box_type='rbox', shape=(120, 160), label_offset=0):
    img, instances = draw_scene(objects, shape, label_offset)
    results = dict(
        img=img,
        img_shape=img.shape[:2],
        ori_shape=img.shape[:2],
        instances=instances,
        img_id='x',
        img_path='x.png',
    )
    results = LoadAnnotations(box_type='qbox')(results)
    if box_type != 'qbox':
        results = ConvertBoxType(dict(gt_bboxes=box_type))(results)
    return results


BOX_TYPES = ['rbox', 'qbox', 'hbox']


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize('box_type', BOX_TYPES)
def test_loaded_boxes_cover_drawn_objects(box_type):
    r = load(box_type=box_type)
    assert (
        type(r['gt_bboxes']).__name__
        == {'rbox': 'RotatedBoxes', 'qbox': 'QuadriBoxes', 'hbox': 'HorizontalBoxes'}[box_type]
    )
    assert r['gt_bboxes_labels'].dtype == np.int64 and r['gt_ignore_flags'].dtype == bool
    assert r['gt_ignore_flags'].tolist() == [False, True, False, False]
    check_boxes_on_objects(
        r['img'], r['gt_bboxes'], r['gt_bboxes_labels'], tight=box_type != 'hbox'
    )


def test_load_annotations_errors_and_empty():
    r = LoadAnnotations(box_type='qbox')(dict(instances=[], img_path='a.png'))
    assert r['gt_bboxes'].tensor.shape == (0, 8)
    assert r['gt_bboxes_labels'].shape == (0,) and r['gt_ignore_flags'].shape == (0,)
    bad = dict(instances=[dict(bbox=[0, 0, 1, 1], bbox_label=0, ignore_flag=0)], img_path='a.png')
    with pytest.raises(ValueError, match='a.png.*4 numbers, expected 8'):
        LoadAnnotations(box_type='qbox')(bad)
    with pytest.raises(TypeError, match='box object'):
        ConvertBoxType(dict(gt_bboxes='rbox'))(dict(gt_bboxes=np.zeros((1, 4))))


AXIS_ALIGNED_SCENE = [
    (40, 35, 44, 20, 0),
    (110, 40, 30, 16, 90),
    (70, 90, 50, 24, 0),
    (130, 95, 24, 30, 0),
]


@pytest.mark.parametrize('box_type', BOX_TYPES)
@pytest.mark.parametrize(
    'kwargs',
    [
        dict(scale=(240, 180), keep_ratio=True),  # x1.5 both ways
        dict(scale=(100, 150), keep_ratio=False),  # sx = 0.625, sy = 1.25
        dict(scale_factor=(1.4, 0.7)),
    ],
)
def test_resize(box_type, kwargs):
    r = load(box_type=box_type)
    sx, sy = Resize(**kwargs)(copy.deepcopy(r))['scale_factor']
    if box_type == 'rbox' and abs(sx - sy) > 1e-3:
        # a rotated rectangle scaled unequally along x and y is a parallelogram, which no
        # rbox represents (RotatedBoxes.rescale_ approximates it); axis-aligned objects
        # stay rectangles
        r = load(AXIS_ALIGNED_SCENE, box_type=box_type)
    r = Resize(**kwargs)(r)
    h, w = r['img'].shape[:2]
    assert r['img_shape'] == (h, w)
    assert (round(160 * sx), round(120 * sy)) == (w, h)
    check_boxes_on_objects(
        r['img'], r['gt_bboxes'], r['gt_bboxes_labels'], tight=box_type != 'hbox'
    )
    np.testing.assert_allclose(r['homography_matrix'], np.diag([sx, sy, 1]), rtol=1e-6)


def test_random_resize_builds_ai4rs_resize_and_respects_ratio_range():
    t = TRANSFORMS.build(
        dict(
            type='RandomResize',
            scale=(160, 120),
            ratio_range=(0.5, 2.0),
            resize_type='Resize',
            keep_ratio=True,
        )
    )
    assert type(t.resize) is Resize
    np.random.seed(3)
    for _ in range(3):
        r = t(load())
        h, w = r['img'].shape[:2]
        assert 0.5 * 160 - 1 <= w <= 2.0 * 160 + 1 and abs(w / h - 160 / 120) < 0.03
        check_boxes_on_objects(r['img'], r['gt_bboxes'], r['gt_bboxes_labels'])
    assert isinstance(t, RandomResize)


@pytest.mark.parametrize('box_type', BOX_TYPES)
@pytest.mark.parametrize('direction', ['horizontal', 'vertical', 'diagonal'])
def test_flip(box_type, direction):
    r = RandomFlip(prob=1.0, direction=direction)(load(box_type=box_type))
    assert r['flip'] is True and r['flip_direction'] == direction
    check_boxes_on_objects(
        r['img'], r['gt_bboxes'], r['gt_bboxes_labels'], tight=box_type != 'hbox'
    )


def test_flip_rbox_angle_rules():
    r0 = load()
    t0 = r0['gt_bboxes'].tensor.clone()
    for direction, sign in (('horizontal', -1), ('vertical', -1), ('diagonal', 1)):
        r = RandomFlip(prob=1.0, direction=direction)(copy.deepcopy(r0))
        t = r['gt_bboxes'].tensor
        torch.testing.assert_close(t[:, 2:4], t0[:, 2:4])
        torch.testing.assert_close(t[:, 4], sign * t0[:, 4])


def test_random_flip_probability_split_over_directions():
    np.random.seed(0)
    t = RandomFlip(prob=0.75, direction=['horizontal', 'vertical', 'diagonal'])
    seen = [t(dict(img=np.zeros((4, 4, 3), np.uint8)))['flip_direction'] for _ in range(400)]
    counts = {d: seen.count(d) for d in ('horizontal', 'vertical', 'diagonal', None)}
    for d in ('horizontal', 'vertical', 'diagonal', None):
        assert 60 < counts[d] < 140, counts


@pytest.mark.parametrize('box_type', BOX_TYPES)
@pytest.mark.parametrize('angle', [90, -35, 150])
def test_rotate(box_type, angle):
    # objects that stay inside the image whatever the angle, and never overlap
    objects = [(80, 62, 36, 16, 10), (62, 35, 14, 24, -30), (100, 88, 20, 14, 60)]
    r = Rotate(rotate_angle=angle)(load(objects, box_type=box_type))
    assert r['img'].shape == (120, 160, 3)
    assert len(r['gt_bboxes']) == 3
    check_boxes_on_objects(
        r['img'], r['gt_bboxes'], r['gt_bboxes_labels'], tight=box_type != 'hbox'
    )
    if box_type == 'rbox':
        r0 = load(objects)
        diff = (r['gt_bboxes'].tensor[:, 4] - r0['gt_bboxes'].tensor[:, 4]).numpy()
        # rotate_ adds the angle (clockwise, radians), modulo pi
        np.testing.assert_allclose(np.cos(2 * (diff - math.radians(angle))), 1, atol=1e-5)


def test_rotate_drops_boxes_whose_centre_leaves():
    # the object at (150, 10) rotates (90 deg clockwise about (80, 60)) to (130, 130): outside
    objects = [(80, 60, 30, 20, 0), (150, 10, 12, 8, 0)]
    r = Rotate(rotate_angle=90, img_border_value=0)(load(objects))
    assert r['gt_bboxes_labels'].tolist() == [0]
    assert r['gt_ignore_flags'].tolist() == [False]
    check_boxes_on_objects(r['img'], r['gt_bboxes'], r['gt_bboxes_labels'])


def test_random_rotate_rect_obj_labels_use_right_angles():
    t = RandomRotate(prob=1.0, angle_range=180, rect_obj_labels=[2])
    np.random.seed(1)
    for _ in range(6):
        r = t(load())
        m = r['homography_matrix']
        deg = math.degrees(math.atan2(m[1, 0], m[0, 0]))
        assert min(abs(deg - a) for a in (90, -90, 180, -180)) < 1e-3, deg
    t = RandomRotate(prob=1.0, angle_range=20, rect_obj_labels=[9])
    angles = []
    for _ in range(6):
        m = t(load())['homography_matrix']
        angles.append(math.degrees(math.atan2(m[1, 0], m[0, 0])))
    assert all(abs(a) <= 20 for a in angles) and len(set(np.round(angles, 3))) == 6
    r0 = load()
    assert RandomRotate(prob=0.0)(r0) is r0
    with pytest.raises(ValueError):
        RandomRotate(angle_range=200)


def test_random_crop_size_order_is_width_height():
    """mmdet's order: crop_size (w, h) for 'absolute' and 'relative'."""
    np.random.seed(0)
    r = load()
    r['img'] = np.zeros((400, 400, 3), np.uint8)
    out = RandomCrop(crop_size=(200, 100), allow_negative_crop=True)(copy.deepcopy(r))
    assert out['img'].shape[:2] == (100, 200)
    out = RandomCrop(crop_size=(0.5, 0.25), crop_type='relative', allow_negative_crop=True)(
        copy.deepcopy(r)
    )
    assert out['img'].shape[:2] == (100, 200)


@pytest.mark.parametrize('box_type', BOX_TYPES)
def test_random_crop_keeps_boxes_on_visible_objects(box_type):
    np.random.seed(0)
    num_checked = 0
    for _ in range(4):
        r = RandomCrop(crop_size=(90, 70), allow_negative_crop=True)(load(box_type=box_type))
        assert r['img'].shape == (70, 90, 3) and r['img_shape'] == (70, 90)
        check_boxes_on_objects(
            r['img'],
            r['gt_bboxes'],
            r['gt_bboxes_labels'],
            tight=box_type != 'hbox',
            min_cover=0.75,
        )
        num_checked += len(r['gt_bboxes'])
    assert num_checked >= 4  # the check above ran on boxes, not on empty crops


def test_random_crop_drops_rboxes_by_centre():
    np.random.seed(5)
    # centres off the integer grid, so no centre falls exactly on a crop border
    r0 = load(
        [
            (40.3, 35.3, 44, 20, 30),
            (110.3, 40.3, 30, 16, -60),
            (70.3, 90.3, 50, 24, 0),
            (130.3, 95.3, 24, 24, 45),
        ]
    )
    centres = r0['gt_bboxes'].tensor[:, :2].numpy()
    for _ in range(6):
        r = RandomCrop(crop_size=(90, 70), allow_negative_crop=True)(copy.deepcopy(r0))
        ox, oy = -r['homography_matrix'][0, 2], -r['homography_matrix'][1, 2]
        c = centres - [ox, oy]
        expected = np.flatnonzero(
            (c[:, 0] >= 0) & (c[:, 0] <= 90) & (c[:, 1] >= 0) & (c[:, 1] <= 70)
        )
        assert r['gt_bboxes_labels'].tolist() == expected.tolist()
        # kept boxes are translated, never clipped
        torch.testing.assert_close(
            r['gt_bboxes'].tensor[:, 2:], r0['gt_bboxes'].tensor[expected, 2:]
        )


def test_random_crop_without_boxes_returns_none_unless_allowed():
    objects = [(20, 20, 10, 10, 0)]
    np.random.seed(0)
    r = load(objects)
    r['img'] = np.zeros((400, 400, 3), np.uint8)  # a large empty area to crop from
    # crops 200x200 from a 400x400 image: some crops miss the object
    results = [RandomCrop(crop_size=(200, 200))(copy.deepcopy(r)) for _ in range(10)]
    assert any(x is None for x in results)
    assert all(x is None or len(x['gt_bboxes']) == 1 for x in results)
    np.random.seed(0)
    allowed = [
        RandomCrop((200, 200), allow_negative_crop=True)(copy.deepcopy(r)) for _ in range(10)
    ]
    assert all(x is not None for x in allowed)
    with pytest.raises(ValueError):
        RandomCrop(crop_size=(0.5, 0.5))


@pytest.mark.parametrize(
    'kwargs, shape',
    [
        (dict(size=(200, 150), pad_val=dict(img=(114, 114, 114))), (150, 200)),
        (dict(size_divisor=32, pad_val=7), (128, 160)),
        (dict(pad_to_square=True), (160, 160)),
    ],
)
def test_pad(kwargs, shape):
    r0 = load()
    r = Pad(**kwargs)(copy.deepcopy(r0))
    assert r['img'].shape[:2] == shape and r['img_shape'] == shape
    np.testing.assert_array_equal(r['img'][:120, :160], r0['img'])
    value = kwargs.get('pad_val', 0)
    value = value['img'][0] if isinstance(value, dict) else value
    assert (r['img'][120:] == value).all() and (r['img'][:, 160:] == value).all()
    torch.testing.assert_close(r['gt_bboxes'].tensor, r0['gt_bboxes'].tensor)
    with pytest.raises(ValueError, match='larger than size'):
        Pad(size=(100, 100))(load())


def test_yolox_hsv_aug_changes_colours_not_geometry():
    r0 = load()
    np.random.seed(0)
    out = YOLOXHSVRandomAug(hue_delta=0, saturation_delta=0, value_delta=0)(copy.deepcopy(r0))
    np.testing.assert_array_equal(out['img'], r0['img'])
    changed = 0
    for _ in range(5):
        r = YOLOXHSVRandomAug(value_delta=60)(copy.deepcopy(r0))
        assert r['img'].dtype == np.uint8 and r['img'].shape == r0['img'].shape
        torch.testing.assert_close(r['gt_bboxes'].tensor, r0['gt_bboxes'].tensor)
        # background stays black unless value grows; object pixels stay where they were
        fg0 = r0['img'].max(-1) > 0
        assert (r['img'][~fg0].max(-1) <= 60).all()
        changed += int((r['img'] != r0['img']).any())
    assert changed > 0
    with pytest.raises(ValueError, match='uint8'):
        YOLOXHSVRandomAug()(dict(img=np.zeros((4, 4, 3), np.float32)))


def test_cached_mosaic_keeps_boxes_on_objects():
    np.random.seed(2)
    t = CachedMosaic(img_scale=(120, 100), pad_val=0, max_cached_images=10)  # (w, h)
    scenes = [
        [(40, 35, 44, 20, 30), (110, 40, 30, 16, -60)],
        [(60, 60, 50, 24, 0), (120, 90, 24, 24, 45)],
        [(50, 70, 40, 30, 70), (100, 30, 20, 40, 10)],
        [(80, 60, 60, 20, -20), (30, 100, 20, 20, 0)],
        [(70, 50, 36, 22, 15), (130, 90, 28, 18, -45)],
    ]
    outs = []
    for k, scene in enumerate(scenes):
        r = load(scene, label_offset=2 * k)
        out = t(r)
        outs.append(out)
    for out in outs[:4]:  # cache too small: unchanged
        assert out['img'].shape == (120, 160, 3)
    out = outs[4]
    assert out['img'].shape == (200, 240, 3) and out['img_shape'] == (200, 240)
    n = len(out['gt_bboxes'])
    assert n > 0 and len(out['gt_bboxes_labels']) == n and len(out['gt_ignore_flags']) == n
    # the current image (labels 8, 9) is the top-left part
    assert 8 in out['gt_bboxes_labels'] or 9 in out['gt_bboxes_labels']
    check_boxes_on_objects(out['img'], out['gt_bboxes'], out['gt_bboxes_labels'], min_cover=0.7)
    assert len(t.results_cache) == 5


def test_cached_mixup_keeps_boxes_on_objects():
    t = CachedMixUp(
        img_scale=(160, 120),
        ratio_range=(0.8, 1.2),
        pad_val=0,  # (w, h)
        max_cached_images=5,
    )
    first = load([(40, 35, 44, 20, 30), (110, 40, 30, 16, -60)], label_offset=0)
    second_objects = [(60, 95, 50, 20, 0), (130, 98, 24, 24, 45)]  # below the first ones
    for seed in range(4):
        np.random.seed(seed)
        t.results_cache.clear()
        assert t(copy.deepcopy(first))['img'].shape == (120, 160, 3)  # only cached
        out = t(load(second_objects, label_offset=2))
        labels = out['gt_bboxes_labels']
        assert set(labels) >= {2, 3} and set(labels) & {0, 1}
        assert out['img'].dtype == np.uint8 and out['img'].shape == (120, 160, 3)
        assert len(out['gt_ignore_flags']) == len(labels)
        check_boxes_on_objects(out['img'], out['gt_bboxes'], labels, scale=0.5, min_cover=0.55)


def test_filter_annotations():
    r = load([(40, 35, 44, 20, 30), (110, 40, 30, 0.5, -60), (70, 90, 50, 24, 0)])
    out = FilterAnnotations(min_gt_bbox_wh=(1, 1))(copy.deepcopy(r))
    assert out['gt_bboxes_labels'].tolist() == [0, 2]
    assert out['gt_ignore_flags'].tolist() == [False, False]
    assert FilterAnnotations(min_gt_bbox_wh=(60, 60))(copy.deepcopy(r)) is None
    kept = FilterAnnotations(min_gt_bbox_wh=(60, 60), keep_empty=False)(copy.deepcopy(r))
    assert len(kept['gt_bboxes']) == 0


def test_pack_det_inputs_splits_ignored_instances():
    r = RandomFlip(prob=1.0, direction='vertical')(Resize(scale_factor=1.0)(load()))
    packed = PackDetInputs()(r)
    inputs, sample = packed['inputs'], packed['data_samples']
    assert inputs.dtype == torch.uint8 and inputs.shape == (3, 120, 160)
    np.testing.assert_array_equal(inputs.numpy().transpose(1, 2, 0), r['img'])
    assert isinstance(sample.gt_instances.bboxes, RotatedBoxes)
    assert sample.gt_instances.labels.tolist() == [0, 2, 3]
    assert sample.ignored_instances.labels.tolist() == [1]
    torch.testing.assert_close(sample.ignored_instances.bboxes.tensor, r['gt_bboxes'].tensor[1:2])
    assert sample.flip_direction == 'vertical' and sample.img_shape == (120, 160)
    assert sample.scale_factor == (1.0, 1.0) and sample.img_path == 'x.png'
    with pytest.raises(KeyError, match="'flip'"):
        PackDetInputs()(Resize(scale_factor=1.0)(load()))  # no RandomFlip: no 'flip'
    packed = PackDetInputs(meta_keys=('img_id',))(load())
    assert packed['data_samples'].metainfo == dict(img_id='x')


def test_training_pipeline_from_config_names():
    """The rotated YOLOX training pipeline, built from registry names, end to end."""
    pipeline = [
        dict(type='CachedMosaic', img_scale=(64, 64), pad_val=114.0, max_cached_images=6),
        dict(
            type='RandomResize',
            resize_type='Resize',
            scale=(128, 128),
            ratio_range=(0.5, 1.5),
            keep_ratio=True,
        ),
        dict(type='RandomRotate', prob=0.5, angle_range=180, rect_obj_labels=[9, 11]),
        dict(type='RandomCrop', crop_size=(64, 64)),
        dict(type='YOLOXHSVRandomAug'),
        dict(type='RandomFlip', prob=0.75, direction=['horizontal', 'vertical', 'diagonal']),
        dict(type='Pad', size=(64, 64), pad_val=dict(img=(114, 114, 114))),
        dict(
            type='CachedMixUp',
            img_scale=(64, 64),
            ratio_range=(1.0, 1.0),
            max_cached_images=5,
            pad_val=(114, 114, 114),
        ),
        dict(type='PackDetInputs'),
    ]
    import random

    from mmcv.transforms import Compose

    compose = Compose([TRANSFORMS.build(c) for c in pipeline])
    np.random.seed(0)
    random.seed(0)  # CachedMosaic / CachedMixUp draw from `random`
    n_ok = 0
    covers, wrong_covers = [], []
    for i in range(8):
        out = compose(load(SCENE, shape=(96, 128)))
        if out is None:  # RandomCrop found no object: the dataset would resample
            continue
        n_ok += 1
        assert out['inputs'].shape == (3, 64, 64)
        bboxes = out['data_samples'].gt_instances.bboxes
        assert isinstance(bboxes, RotatedBoxes)
        # the pixel check: the boxes sit on their objects' pixels ...
        img = out['inputs'].numpy().transpose(1, 2, 0)
        labels = out['data_samples'].gt_instances.labels.numpy()
        covers.extend(box_colour_cover(img, bboxes, labels))
        # ... and boxes that did not follow the image (flipped diagonally) do not
        wrong = copy.deepcopy(bboxes)
        wrong.flip_((64, 64), direction='diagonal')
        wrong_covers.extend(box_colour_cover(img, wrong, labels))
    assert n_ok >= 4
    covers, wrong_covers = np.asarray(covers), np.asarray(wrong_covers)
    assert len(covers) >= 15
    assert (covers > 0.5).mean() >= 0.6, covers
    assert (wrong_covers > 0.5).mean() <= 0.25, wrong_covers


def test_cached_mixing_transforms_share_cache_and_checks():
    from ai4rs.datasets.transforms.transforms import CachedMixTransform, CachedMixUp, CachedMosaic

    for cls, minimum in ((CachedMosaic, 4), (CachedMixUp, 2)):
        assert issubclass(cls, CachedMixTransform)
        with pytest.raises(
            ValueError, match=f'{cls.__name__}: max_cached_images must be >= {minimum}'
        ):
            cls(max_cached_images=minimum - 1)
        with pytest.raises(ValueError, match=f'{cls.__name__}: prob'):
            cls(prob=1.5)
        with pytest.raises(TypeError, match=f'{cls.__name__}: img_scale'):
            cls(img_scale=[64, 64])
        # oldest-first eviction keeps the last `minimum` results; prob 0 never mixes
        t = cls(max_cached_images=minimum, random_pop=False, prob=0.0)
        for i in range(3 * minimum):
            results = dict(img_id=i)
            assert t(results) is results
        assert [r['img_id'] for r in t.results_cache] == list(range(2 * minimum, 3 * minimum))
