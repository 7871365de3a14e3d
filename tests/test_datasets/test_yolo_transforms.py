"""YOLO transforms (mmyolo / YOLO-World names) on hand-built samples.

Expected boxes are computed here independently: from the documented placement of each
image (mosaic), from the affine matrix applied by hand, from the letterbox arithmetic,
or with shapely for polygons clipped to the image.
"""

import copy

import cv2
import numpy as np
import pytest
import torch
from shapely.geometry import Polygon, box

from ai4rs.datasets.transforms import (
    LetterResize,
    LoadAnnotations,
    LoadText,
    Mosaic,
    MultiModalMosaic,
    PackDetInputs,
    RandomFlip,
    RandomLoadText,
    RemoveDataElement,
    YOLOv5CopyPaste,
    YOLOv5HSVRandomAug,
    YOLOv5KeepRatioResize,
    YOLOv5MixUp,
    YOLOv5MultiModalMixUp,
    YOLOv5RandomAffine,
)
from ai4rs.datasets.transforms.yolo_transforms import affine_components, apply_hsv_gains
from ai4rs.datasets.utils import yolov5_collate
from ai4rs.registry import FUNCTIONS, TRANSFORMS
from ai4rs.structures.bbox import HorizontalBoxes
from ai4rs.structures.mask import PolygonMasks


def rect(x1, y1, x2, y2):
    return np.array([x1, y1, x2, y1, x2, y2, x1, y2], dtype=np.float64)


def sample(h, w, boxes, labels, color=(0, 0, 0), texts=None, masks=None, path='img.png'):
    """A loaded results dict: solid image, hbox boxes, optional polygon masks and texts."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    res = dict(
        img=np.full((h, w, 3), color, dtype=np.uint8),
        img_shape=(h, w),
        ori_shape=(h, w),
        img_path=path,
        img_id=0,
        gt_bboxes=HorizontalBoxes(boxes),
        gt_bboxes_labels=np.asarray(labels, dtype=np.int64),
        gt_ignore_flags=np.zeros(len(boxes), dtype=bool),
    )
    if masks is not None:
        res['gt_masks'] = PolygonMasks(
            [[np.asarray(p, dtype=np.float64) for p in m] for m in masks], h, w
        )
    if texts is not None:
        res['texts'] = texts
    return res


class ListDataset:
    """Minimal dataset for mixing transforms: ``get_data_info`` returns a copy."""

    def __init__(self, infos):
        self.infos = infos

    def __len__(self):
        return len(self.infos)

    def get_data_info(self, idx):
        return copy.deepcopy(self.infos[idx])


# ----------------------------------------------------------------------------- mosaic
MOSAIC_IMAGES = [  # (h, w, colour, boxes)
    (16, 24, (10, 20, 30), [[2, 2, 10, 8], [20, 10, 24, 16]]),
    (40, 20, (40, 50, 60), [[0, 0, 20, 40]]),
    (32, 32, (70, 80, 90), [[4, 4, 28, 12]]),
    (8, 16, (100, 110, 120), [[1, 1, 15, 7]]),
]


def expected_mosaic_boxes(center, scale=32):
    """Each image's origin placed by its corner at the centre (independent of cropping)."""
    cx, cy = center
    out = []
    for (h, w, _, boxes), loc in zip(MOSAIC_IMAGES, ('tl', 'tr', 'bl', 'br')):
        r = min(scale / h, scale / w)
        nw, nh = int(w * r), int(h * r)
        ox = cx - nw if loc in ('tl', 'bl') else cx
        oy = cy - nh if loc in ('tl', 'tr') else cy
        for b in boxes:
            out.append([b[0] * r + ox, b[1] * r + oy, b[2] * r + ox, b[3] * r + oy])
    return np.clip(np.array(out), 0, 2 * scale)


@pytest.mark.parametrize('center', [(32, 32), (20, 41), (45, 18)])
def test_mosaic_boxes_and_pixels(center, monkeypatch):
    infos = [
        sample(h, w, b, [i] * len(b), color=c, masks=[[rect(*bb)] for bb in b])
        for i, (h, w, c, b) in enumerate(MOSAIC_IMAGES)
    ]
    results = copy.deepcopy(infos[0])
    results['dataset'] = ListDataset(infos)
    t = Mosaic(img_scale=(32, 32), pad_val=114)
    monkeypatch.setattr(t, 'get_indexes', lambda dataset: [1, 2, 3])
    monkeypatch.setattr(t, '_get_center', lambda: center)
    out = t(results)
    cx, cy = center
    assert out['img'].shape == (64, 64, 3) and out['img_shape'] == (64, 64)
    np.testing.assert_allclose(
        out['gt_bboxes'].tensor.numpy(), expected_mosaic_boxes(center), atol=1e-4
    )
    np.testing.assert_array_equal(out['gt_bboxes_labels'], [0, 0, 1, 2, 3])
    # the pixel at each side of the centre belongs to its quadrant's image
    for (y, x), (_, _, colour, _) in zip(
        [(cy - 1, cx - 1), (cy - 1, cx), (cy, cx - 1), (cy, cx)], MOSAIC_IMAGES
    ):
        np.testing.assert_array_equal(out['img'][y, x], colour)
    assert (out['img'][0, 63] == 114).all()  # right of the top-right image: padding
    # polygons moved with their boxes: their tight boxes are the boxes
    np.testing.assert_allclose(
        out['gt_masks'].get_bboxes().tensor.numpy(), out['gt_bboxes'].tensor.numpy(), atol=1e-4
    )
    assert out['dataset'] is results['dataset']


def test_mosaic_without_clip_drops_outside_boxes(monkeypatch):
    infos = [sample(32, 32, [[0, 0, 4, 4], [20, 20, 30, 30]], [0, 1]) for _ in range(4)]
    results = copy.deepcopy(infos[0])
    results['dataset'] = ListDataset(infos)
    t = Mosaic(img_scale=(32, 32), bbox_clip_border=False)
    monkeypatch.setattr(t, 'get_indexes', lambda dataset: [1, 2, 3])
    monkeypatch.setattr(t, '_get_center', lambda: (20, 20))
    out = t(results)
    # images placed at (-12, -12), (20, -12), (-12, 20), (20, 20): the first box of the
    # first three images lies outside the canvas, everything else overlaps it (unclipped)
    np.testing.assert_allclose(
        out['gt_bboxes'].tensor.numpy(),
        [[8, 8, 18, 18], [40, 8, 50, 18], [8, 40, 18, 50], [20, 20, 24, 24], [40, 40, 50, 50]],
    )
    np.testing.assert_array_equal(out['gt_bboxes_labels'], [1, 1, 1, 0, 1])


def test_mosaic_cached_mode_fills_then_mixes():
    t = Mosaic(img_scale=(16, 16), use_cached=True, max_cached_images=5, random_pop=False)
    shapes = []
    for i in range(7):
        res = sample(8, 8, [[1, 1, 4, 4]], [i], color=(i, i, i))
        res['dataset'] = 'kept'
        out = t(res)
        shapes.append(out['img'].shape[:2])
        assert out['dataset'] == 'kept'
        assert len(t.results_cache) == min(i + 1, 5)
    # the first four calls only fill the cache; then 32 x 32 mosaics of cached images
    assert shapes == [(8, 8)] * 4 + [(32, 32)] * 3
    assert [int(r['gt_bboxes_labels'][0]) for r in t.results_cache] == [2, 3, 4, 5, 6]


def test_mosaic_needs_dataset():
    with pytest.raises(KeyError, match='dataset'):
        Mosaic(img_scale=(32, 32))(sample(32, 32, [[0, 0, 4, 4]], [0]))


def test_multimodal_mosaic_keeps_each_label_on_its_text(monkeypatch):
    vocabularies = [[['cat'], ['dog']], [['dog'], ['car']], [['car'], ['cat'], ['bus']], [['bus']]]
    labels = [[0, 1], [1], [2], [0]]
    infos = [
        sample(h, w, b, lb, texts=voc)
        for (h, w, _, b), lb, voc in zip(MOSAIC_IMAGES, labels, vocabularies)
    ]
    expected = [voc[lb][0] for voc, lbs in zip(vocabularies, labels) for lb in lbs]
    results = copy.deepcopy(infos[0])
    results['dataset'] = ListDataset(infos)
    t = MultiModalMosaic(img_scale=(32, 32))
    monkeypatch.setattr(t, 'get_indexes', lambda dataset: [1, 2, 3])
    monkeypatch.setattr(t, '_get_center', lambda: (32, 32))
    out = t(results)
    assert [out['texts'][lb][0] for lb in out['gt_bboxes_labels']] == expected
    assert sorted(t[0] for t in out['texts']) == ['bus', 'car', 'cat', 'dog']


# ------------------------------------------------------------------------------ mixup
def test_yolov5_mixup_blends_and_concatenates():
    a = sample(16, 16, [[1, 1, 5, 5]], [0], color=(100, 100, 100), masks=[[rect(1, 1, 5, 5)]])
    b = sample(
        16,
        16,
        [[8, 8, 12, 14], [0, 0, 2, 2]],
        [3, 4],
        color=(200, 200, 200),
        masks=[[rect(8, 8, 12, 14)], [rect(0, 0, 2, 2)]],
    )
    results = copy.deepcopy(a)
    results['dataset'] = ListDataset([b])
    out = YOLOv5MixUp(prob=1.0)(results)
    img = out['img'].astype(np.float64)
    assert out['img'].dtype == np.uint8 and (img == img[0, 0, 0]).all()
    ratio = (200 - img[0, 0, 0]) / 100  # img = 100 r + 200 (1 - r), truncated to uint8
    assert 0.25 < ratio < 0.75
    np.testing.assert_allclose(
        out['gt_bboxes'].tensor.numpy(), [[1, 1, 5, 5], [8, 8, 12, 14], [0, 0, 2, 2]]
    )
    np.testing.assert_array_equal(out['gt_bboxes_labels'], [0, 3, 4])
    assert len(out['gt_ignore_flags']) == 3 and len(out['gt_masks']) == 3


def test_yolov5_mixup_rejects_different_shapes():
    results = sample(16, 16, [[1, 1, 5, 5]], [0])
    results['dataset'] = ListDataset([sample(16, 20, [[1, 1, 5, 5]], [0])])
    with pytest.raises(ValueError, match='cannot be mixed'):
        YOLOv5MixUp(prob=1.0)(results)


def test_multimodal_mixup_remaps_labels():
    a = sample(16, 16, [[1, 1, 5, 5], [2, 2, 4, 4]], [1, 0], texts=[['person'], ['kite']])
    b = sample(16, 16, [[8, 8, 12, 14]], [2], texts=[['kite'], ['tree'], ['person']])
    results = copy.deepcopy(a)
    results['dataset'] = ListDataset([b])
    out = YOLOv5MultiModalMixUp(prob=1.0)(results)
    assert [out['texts'][lb][0] for lb in out['gt_bboxes_labels']] == ['kite', 'person', 'person']
    assert len(out['texts']) == 3


def test_mix_prob_zero_is_identity():
    results = sample(16, 16, [[1, 1, 5, 5]], [0], color=(7, 7, 7))
    out = YOLOv5MixUp(prob=0.0)(copy.deepcopy(results))
    np.testing.assert_array_equal(out['img'], results['img'])


# ----------------------------------------------------------------------------- affine
def fixed_affine(matrix, scale, **kwargs):
    t = YOLOv5RandomAffine(**kwargs)
    t._get_random_homography_matrix = lambda height, width: (np.asarray(matrix, np.float32), scale)
    return t


def apply(matrix, x, y):
    m = np.asarray(matrix, dtype=np.float64)
    return m[0, 0] * x + m[0, 1] * y + m[0, 2], m[1, 0] * x + m[1, 1] * y + m[1, 2]


def test_affine_matrix_composition():
    m = affine_components(rotate_degree=90, scale=2, translate=(5, 7))
    # scale 2 then rotate 90 (x -> y, y -> -x) then translate
    np.testing.assert_allclose(apply(m, 1, 0), (5, 9), atol=1e-5)
    np.testing.assert_allclose(apply(m, 0, 1), (3, 7), atol=1e-5)
    m = affine_components(shear_x=45)
    np.testing.assert_allclose(apply(m, 0, 1), (1, 1), atol=1e-5)


def test_affine_scale_translate_boxes_and_pixels():
    # 64x64 input, border (-16, -16) -> 32x32 output; centre, scale 0.5, move to (16, 16)
    img = np.zeros((64, 64, 3), np.uint8)
    img[8:40, 8:24] = 255
    res = sample(64, 64, [[8, 8, 24, 40]], [5])
    res['img'] = img
    m = affine_components(scale=0.5, translate=(16, 16))
    t = fixed_affine(m, 0.5, border=(-16, -16), min_bbox_size=2, min_area_ratio=0.1)
    out = t(res)
    assert out['img'].shape == (32, 32, 3) and out['img_shape'] == (32, 32)
    # (x - 32) * 0.5 + 16 by hand
    np.testing.assert_allclose(out['gt_bboxes'].tensor.numpy(), [[4, 4, 12, 20]], atol=1e-5)
    assert out['img'][12, 8].min() > 200 and out['img'][2, 2].max() == 0
    assert out['img'][21, 8].max() == 0 and out['img'][12, 13].max() == 0
    np.testing.assert_array_equal(out['gt_bboxes_labels'], [5])


def test_affine_rotation_corners_by_hand():
    res = sample(40, 40, [[10, 12, 20, 16]], [0])
    m = affine_components(rotate_degree=30, translate=(20, 20))
    t = fixed_affine(m, 1.0, min_area_ratio=0.0, max_aspect_ratio=100)
    out = t(res)
    full = m @ np.array([[1, 0, -20], [0, 1, -20], [0, 0, 1]], dtype=np.float32)
    corners = [apply(full, x, y) for x in (10, 20) for y in (12, 16)]
    xs, ys = zip(*corners)
    expected = np.clip([min(xs), min(ys), max(xs), max(ys)], 0, 40)
    np.testing.assert_allclose(out['gt_bboxes'].tensor.numpy()[0], expected, atol=1e-4)


def test_affine_mask_refine_tight_around_warped_polygon():
    tri = np.array([10.0, 10, 30, 14, 16, 34])
    res = sample(40, 40, [[10, 10, 30, 34]], [1], masks=[[tri]])
    m = affine_components(rotate_degree=25, scale=0.9, shear_x=5, translate=(20, 20))
    t = fixed_affine(m, 0.9, use_mask_refine=True, min_area_ratio=0.0)
    out = t(res)
    full = m @ np.array([[1, 0, -20], [0, 1, -20], [0, 0, 1]], dtype=np.float32)
    pts = np.array([apply(full, x, y) for x, y in tri.reshape(-1, 2)])
    assert (pts >= 0).all() and (pts <= 40).all()
    # a triangle resampled to 1000 points keeps its vertices (999 / 3 steps per edge)
    expected = [*pts.min(0), *pts.max(0)]
    np.testing.assert_allclose(out['gt_bboxes'].tensor.numpy()[0], expected, atol=1e-3)
    # the corner-warp box would be looser than the polygon's
    loose = [apply(full, x, y) for x in (10, 30) for y in (10, 34)]
    assert np.array(loose)[:, 0].min() < expected[0] - 1
    assert len(out['gt_masks']) == 1 and out['gt_masks'].masks[0][0].shape == (2000,)


def test_affine_mask_refine_partly_outside_matches_shapely():
    poly = np.array([2.0, 2, 38, 6, 30, 30, 8, 26])
    res = sample(40, 40, [[2, 2, 38, 30]], [0], masks=[[poly]])
    m = affine_components(rotate_degree=-20, scale=1.3, translate=(26, 12))
    out = fixed_affine(m, 1.3, use_mask_refine=True, min_area_ratio=0.0)(res)
    full = m @ np.array([[1, 0, -20], [0, 1, -20], [0, 0, 1]], dtype=np.float32)
    warped = Polygon([apply(full, x, y) for x, y in poly.reshape(-1, 2)])
    assert not box(0, 0, 40, 40).contains(warped)
    # the refined box encloses the polygon's outline inside the image (mmyolo keeps the
    # resampled boundary points that fall inside), not the clipped area
    expected = warped.exterior.intersection(box(0, 0, 40, 40)).bounds
    got = out['gt_bboxes'].tensor.numpy()[0]
    # resampled points: at most one sample step (~perimeter / 1000 < 0.2 px) inside
    np.testing.assert_allclose(got, expected, atol=0.3)
    assert (got >= 0).all() and (got <= 40).all()


def test_affine_drops_degenerate_boxes():
    res = sample(
        64,
        64,
        [
            [0, 0, 40, 40],  # kept
            [30, 30, 33, 33],  # 3 px -> 1.5 px: min_bbox_size
            [5, 50, 62, 52],  # 57 x 2 -> aspect 28.5: max_aspect_ratio
            [60, 0, 64, 30],
        ],  # mostly outside: min_area_ratio
        [0, 1, 2, 3],
    )
    m = affine_components(scale=0.5, translate=(8, 16))  # (x - 32) / 2 + 8: x >= 0 iff x >= 16
    out = fixed_affine(m, 0.5, min_bbox_size=2, min_area_ratio=0.1, max_aspect_ratio=20)(res)
    np.testing.assert_array_equal(out['gt_bboxes_labels'], [0])
    np.testing.assert_allclose(out['gt_bboxes'].tensor.numpy(), [[0, 0, 12, 20]], atol=1e-5)
    assert len(out['gt_ignore_flags']) == 1
    # the same boxes survive when the thresholds allow them
    out = fixed_affine(m, 0.5, min_bbox_size=0, min_area_ratio=0.0, max_aspect_ratio=100)(
        sample(64, 64, [[30, 30, 33, 33], [5, 50, 62, 52]], [1, 2])
    )
    np.testing.assert_array_equal(out['gt_bboxes_labels'], [1, 2])


def test_affine_random_matrix_within_ranges():
    np.random.seed(0)
    t = YOLOv5RandomAffine(
        max_rotate_degree=0,
        max_shear_degree=0,
        scaling_ratio_range=(0.5, 1.5),
        max_translate_ratio=0.1,
    )
    for _ in range(5):
        m, s = t._get_random_homography_matrix(100, 200)
        assert 0.5 <= s <= 1.5 and abs(m[0, 0] - s) < 1e-6 and abs(m[0, 1]) < 1e-6
        assert 80 <= m[0, 2] <= 120 and 40 <= m[1, 2] <= 60


# ---------------------------------------------------------------------- letterbox
def test_letter_resize_by_hand_and_inverse():
    res = sample(20, 40, [[4, 2, 20, 10], [0, 0, 40, 20]], [0, 1], color=(9, 9, 9))
    out = LetterResize(scale=(32, 32), pad_val=dict(img=114))(res)
    # ratio 0.8 -> 16 x 32, pad 16 rows: top 8, bottom 8
    assert out['img'].shape == (32, 32, 3)
    np.testing.assert_allclose(out['pad_param'], [8, 8, 0, 0])
    np.testing.assert_allclose(out['scale_factor'], (0.8, 0.8))
    np.testing.assert_allclose(
        out['gt_bboxes'].tensor.numpy(), [[3.2, 9.6, 16, 16], [0, 8, 32, 24]], atol=1e-5
    )
    assert (out['img'][0] == 114).all() and (out['img'][31] == 114).all()
    assert (out['img'][8:24] == 9).all()
    top, _, left, _ = out['pad_param']
    back = (out['gt_bboxes'].tensor.numpy() - [left, top, left, top]) / np.tile(
        out['scale_factor'], 2
    )
    np.testing.assert_allclose(back, [[4, 2, 20, 10], [0, 0, 40, 20]], atol=1e-5)


def test_keep_ratio_then_letterbox_maps_back_exactly():
    rng = np.random.default_rng(0)
    for h, w in [(30, 50), (77, 21), (64, 64), (13, 90)]:
        xy = np.sort(rng.uniform(0, 1, (6, 2, 2)) * [w, h], axis=1)
        boxes = xy.reshape(6, 4)
        res = sample(h, w, boxes, list(range(6)))
        res = YOLOv5KeepRatioResize(scale=(64, 64))(res)
        assert max(res['img'].shape[:2]) == 64
        out = LetterResize(scale=(64, 64), allow_scale_up=False, pad_val=dict(img=114))(res)
        assert out['img'].shape == (64, 64, 3)
        top, bottom, left, right = out['pad_param']
        assert top + bottom + out['img_shape'][0] - 64 <= 64 and left >= 0
        back = (out['gt_bboxes'].tensor.numpy() - [left, top, left, top]) / np.tile(
            out['scale_factor'], 2
        )
        np.testing.assert_allclose(back, boxes, atol=1e-4)


def test_letter_resize_no_scale_up_and_masks():
    res = sample(10, 20, [[2, 2, 6, 8]], [0], masks=[[rect(2, 2, 6, 8)]])
    out = LetterResize(scale=(32, 32), allow_scale_up=False)(res)
    np.testing.assert_allclose(out['scale_factor'], (1, 1))
    np.testing.assert_allclose(out['pad_param'], [11, 11, 6, 6])
    np.testing.assert_allclose(out['gt_bboxes'].tensor.numpy(), [[8, 13, 12, 19]])
    np.testing.assert_allclose(out['gt_masks'].get_bboxes().tensor.numpy(), [[8, 13, 12, 19]])
    # half_pad_param records float halves; float pad values fill every channel
    out = LetterResize(
        scale=(32, 31), half_pad_param=True, allow_scale_up=False, pad_val=dict(img=114.0)
    )(sample(10, 20, [[2, 2, 6, 8]], [0]))
    np.testing.assert_allclose(out['pad_param'], [10.5, 10.5, 6, 6])
    assert (out['img'][0, 0] == 114).all()


# --------------------------------------------------------------------------- colour
def test_hsv_keeps_shape_and_changes_pixels():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    np.random.seed(3)
    out = YOLOv5HSVRandomAug()(dict(img=img.copy()))['img']
    assert out.shape == img.shape and out.dtype == np.uint8
    assert (out != img).any()
    # zero deltas: gains 1, only the BGR -> HSV -> BGR round trip remains
    out = YOLOv5HSVRandomAug(0, 0, 0)(dict(img=img.copy()))['img']
    roundtrip = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2HSV), cv2.COLOR_HSV2BGR)
    np.testing.assert_array_equal(out, roundtrip)
    # value gain 0.5 on a grey image halves it
    grey = np.full((4, 4, 3), 200, np.uint8)
    np.testing.assert_array_equal(apply_hsv_gains(grey, (1, 1, 0.5)), 100)


# ----------------------------------------------------------------------- copy-paste
def test_copy_paste_mirrors_objects():
    img = np.zeros((32, 32, 3), np.uint8)
    img[4:12, 2:10] = (0, 0, 255)
    res = sample(
        32,
        32,
        [[2, 4, 10, 12], [12, 20, 20, 28]],
        [3, 4],
        masks=[[rect(2, 4, 10, 12)], [rect(12, 20, 20, 28)]],
    )
    res['img'] = img
    np.random.seed(0)
    out = YOLOv5CopyPaste(prob=1.0)(res)
    # the second object's mirror [12, 20, 20, 28] covers itself: not a candidate
    np.testing.assert_allclose(
        out['gt_bboxes'].tensor.numpy(), [[2, 4, 10, 12], [12, 20, 20, 28], [22, 4, 30, 12]]
    )
    np.testing.assert_array_equal(out['gt_bboxes_labels'], [3, 4, 3])
    assert len(out['gt_masks']) == 3 and len(out['gt_ignore_flags']) == 3
    np.testing.assert_allclose(out['gt_masks'][2].get_bboxes().tensor.numpy(), [[22, 4, 30, 12]])
    assert (out['img'][5:11, 23:29] == (0, 0, 255)).all()
    assert (out['img'][20:28, 12:20] == 0).all()


def test_copy_paste_without_masks_is_identity():
    res = sample(32, 32, [[2, 4, 10, 12]], [3])
    out = YOLOv5CopyPaste(prob=1.0)(copy.deepcopy(res))
    assert len(out['gt_bboxes']) == 1


# --------------------------------------------------------------------------- flip
def test_random_flip_flips_masks_with_boxes():
    res = sample(20, 30, [[2, 3, 9, 12]], [0], masks=[[np.array([2.0, 3, 9, 3, 5, 12])]])
    out = RandomFlip(prob=1.0, direction='horizontal')(res)
    np.testing.assert_allclose(out['gt_bboxes'].tensor.numpy(), [[21, 3, 28, 12]])
    np.testing.assert_allclose(out['gt_masks'].masks[0][0], [28, 3, 21, 3, 25, 12])


# ---------------------------------------------------------------------------- texts
TEXTS = [[f'class{i}', f'alias{i}'] for i in range(10)]


def test_random_load_text_labels_index_their_text():
    import random

    random.seed(0)
    for _ in range(20):
        res = sample(
            8, 8, [[0, 0, 2, 2]] * 4, [3, 7, 3, 0], texts=TEXTS, masks=[[rect(0, 0, 2, 2)]] * 4
        )
        out = RandomLoadText(
            num_neg_samples=(2, 4), max_num_samples=8, padding_to_max=True, padding_value='<pad>'
        )(res)
        assert len(out['texts']) == 8
        n_real = sum(t != '<pad>' for t in out['texts'])
        assert 3 + 2 <= n_real <= 3 + 4
        assert out['texts'][n_real:] == ['<pad>'] * (8 - n_real)
        for lb, orig in zip(out['gt_bboxes_labels'], [3, 7, 3, 0]):
            assert out['texts'][lb] in TEXTS[orig]
        assert len(set(out['texts'][:n_real])) == n_real
        assert len(out['gt_bboxes']) == len(out['gt_ignore_flags']) == len(out['gt_masks']) == 4


def test_random_load_text_caps_positives_and_drops_their_objects():
    import random

    random.seed(1)
    res = sample(8, 8, [[0, 0, 2, 2]] * 6, [0, 1, 2, 3, 4, 5], texts=TEXTS)
    out = RandomLoadText(num_neg_samples=(5, 5), max_num_samples=3, prompt_format='a {}')(res)
    assert len(out['texts']) == 3 and len(out['gt_bboxes_labels']) == 3
    assert len(out['gt_bboxes']) == 3 and len(out['gt_ignore_flags']) == 3
    assert sorted(out['gt_bboxes_labels'].tolist()) == [0, 1, 2]
    assert all(t.startswith('a class') or t.startswith('a alias') for t in out['texts'])


def test_random_load_text_recipe_setting_shuffles_all_classes():
    import random

    random.seed(2)
    texts80 = [[f'c{i}'] for i in range(80)]
    res = sample(8, 8, [[0, 0, 2, 2], [1, 1, 3, 3]], [5, 79], texts=texts80)
    out = RandomLoadText(
        num_neg_samples=(80, 80), max_num_samples=80, padding_to_max=True, padding_value=''
    )(res)
    assert sorted(out['texts']) == sorted(t[0] for t in texts80)
    assert out['texts'] != [t[0] for t in texts80]
    assert [out['texts'][lb] for lb in out['gt_bboxes_labels']] == ['c5', 'c79']


def test_random_load_text_errors(tmp_path):
    with pytest.raises(KeyError, match='MultiModalDataset'):
        RandomLoadText()(sample(8, 8, [[0, 0, 2, 2]], [0]))
    with pytest.raises(ValueError, match='no text'):
        RandomLoadText()(sample(8, 8, [[0, 0, 2, 2]], [12], texts=TEXTS))
    with pytest.raises(FileNotFoundError, match='missing.json'):
        RandomLoadText(text_path=str(tmp_path / 'missing.json'))
    bad = tmp_path / 'bad.json'
    bad.write_text('{"a": 1}')
    with pytest.raises(ValueError, match='bad.json'):
        LoadText(text_path=str(bad))


def test_load_text_dataset_order_first_caption(tmp_path):
    out = LoadText(prompt_format='a photo of {}')(dict(texts=TEXTS[:3]))
    assert out['texts'] == ['a photo of class0', 'a photo of class1', 'a photo of class2']
    path = tmp_path / 'texts.json'
    path.write_text('[["person"], ["bicycle", "bike"]]')
    assert LoadText(text_path=str(path))({})['texts'] == ['person', 'bicycle']


# ------------------------------------------------------------------ loading masks
def test_load_annotations_mask2bbox(tmp_path):
    instances = [
        dict(bbox=[0, 0, 30, 30], bbox_label=2, ignore_flag=0, mask=[[4, 5, 20, 6, 10, 18]]),
        dict(
            bbox=[0, 0, 40, 40],
            bbox_label=1,
            ignore_flag=1,
            mask={'size': [40, 40], 'counts': 'abc'},
        ),
        dict(bbox=[1, 1, 3, 3], bbox_label=0, ignore_flag=0, mask=[[1, 1, 3, 3]]),
        dict(
            bbox=[0, 0, 40, 40],
            bbox_label=4,
            ignore_flag=0,
            mask=[[1, 30, 5, 30, 3, 35], [30, 2, 38, 2, 34, 9]],
        ),
    ]
    res = dict(img_path='a.jpg', ori_shape=(40, 40), instances=instances)
    out = LoadAnnotations(with_bbox=True, with_mask=True, mask2bbox=True)(copy.deepcopy(res))
    np.testing.assert_allclose(out['gt_bboxes'].tensor.numpy(), [[4, 5, 20, 18], [1, 2, 38, 35]])
    np.testing.assert_array_equal(out['gt_bboxes_labels'], [2, 4])
    np.testing.assert_array_equal(out['gt_ignore_flags'], [False, False])
    assert len(out['gt_masks']) == 2 and len(out['gt_masks'].masks[1]) == 1  # merged
    assert (out['gt_masks'].height, out['gt_masks'].width) == (40, 40)
    # without mask2bbox the annotated boxes are kept for the same instances
    out = LoadAnnotations(with_mask=True, merge_polygons=False)(copy.deepcopy(res))
    np.testing.assert_allclose(out['gt_bboxes'].tensor.numpy(), [[0, 0, 30, 30], [0, 0, 40, 40]])
    assert len(out['gt_masks'].masks[1]) == 2
    # plain loading (no masks) is unchanged: every instance, ignore flags kept
    out = LoadAnnotations()(copy.deepcopy(res))
    np.testing.assert_array_equal(out['gt_ignore_flags'], [False, True, False, False])


def test_load_annotations_mask_errors():
    res = dict(
        img_path='b.jpg',
        ori_shape=(8, 8),
        instances=[
            dict(
                bbox=[0, 0, 4, 4], bbox_label=0, ignore_flag=0, mask={'size': [8, 8], 'counts': 'x'}
            )
        ],
    )
    with pytest.raises(ValueError, match='b.jpg'):
        LoadAnnotations(with_mask=True)(res)
    with pytest.raises(ValueError, match='mask2bbox'):
        LoadAnnotations(mask2bbox=True)
    with pytest.raises(ValueError, match='poly2mask'):
        LoadAnnotations(with_mask=True, poly2mask=True)


# ------------------------------------------------------------ packing and collate
def test_pack_and_collate_texts_and_bboxes_labels():
    packed = []
    for i, (boxes, labels) in enumerate(
        [([[1, 2, 3, 4], [5, 6, 7, 8]], [3, 0]), ([[0, 0, 9, 9]], [2])]
    ):
        res = sample(8, 8, boxes, labels, texts=['a', 'b', 'c', 'd'])
        res['pad_param'] = np.array([1, 2, 3, 4], np.float32)
        res['scale_factor'] = (1.0, 1.0)
        packed.append(
            PackDetInputs(meta_keys=('img_id', 'img_shape', 'texts', 'pad_param', 'scale_factor'))(
                res
            )
        )
    assert packed[0]['data_samples'].texts == ['a', 'b', 'c', 'd']
    np.testing.assert_array_equal(packed[0]['data_samples'].pad_param, [1, 2, 3, 4])
    collate = FUNCTIONS.get('yolow_collate')
    assert collate is yolov5_collate and FUNCTIONS.get('yolov5_collate') is yolov5_collate
    batch = collate(packed)
    assert batch['inputs'].shape == (2, 3, 8, 8) and batch['inputs'].dtype == torch.uint8
    np.testing.assert_allclose(
        batch['data_samples']['bboxes_labels'].numpy(),
        [[0, 3, 1, 2, 3, 4], [0, 0, 5, 6, 7, 8], [1, 2, 0, 0, 9, 9]],
    )
    assert batch['data_samples']['texts'] == [['a', 'b', 'c', 'd']] * 2
    assert isinstance(collate(packed, use_ms_training=True)['inputs'], list)


def test_remove_data_element():
    out = RemoveDataElement(keys=['gt_masks', 'absent'])(dict(gt_masks=1, img=2))
    assert out == dict(img=2)


# ------------------------------------------------------------------------- albu
def test_albu_missing_dependency_message_or_runs():
    cfg = dict(
        type='Albu',
        transforms=[dict(type='Blur', p=1.0)],
        bbox_params=dict(
            type='BboxParams',
            format='pascal_voc',
            label_fields=['gt_bboxes_labels', 'gt_ignore_flags'],
        ),
        keymap={'img': 'image', 'gt_bboxes': 'bboxes'},
    )
    try:
        import albumentations  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match='albumentations'):
            TRANSFORMS.build(cfg)
        pytest.skip('albumentations is not installed (optional extra); checked its error')
    t = TRANSFORMS.build(cfg)
    res = sample(16, 16, [[1, 2, 8, 9]], [4], color=(50, 60, 70))
    res['img'][4:8, 4:8] = 255
    out = t(res)
    np.testing.assert_allclose(out['gt_bboxes'].tensor.numpy(), [[1, 2, 8, 9]])
    np.testing.assert_array_equal(out['gt_bboxes_labels'], [4])
    assert out['img'].shape == (16, 16, 3) and out['img_shape'] == (16, 16)
    assert (out['img'][4:8, 4:8] < 255).any()  # blurred into the background
    # a crop drops a box together with its label fields
    for filter_lost in (False, True):
        crop_cfg = copy.deepcopy(cfg)
        crop_cfg['transforms'] = [dict(type='Crop', x_min=0, y_min=0, x_max=10, y_max=10, p=1)]
        if filter_lost:
            crop_cfg['bbox_params']['filter_lost_elements'] = True
        res = sample(20, 20, [[1, 1, 5, 5], [12, 12, 18, 18], [2, 3, 15, 8]], [7, 8, 9])
        res['gt_ignore_flags'] = np.array([False, True, False])
        out = TRANSFORMS.build(crop_cfg)(res)
        np.testing.assert_allclose(out['gt_bboxes'].tensor.numpy(), [[1, 1, 5, 5], [2, 3, 10, 8]])
        np.testing.assert_array_equal(out['gt_bboxes_labels'], [7, 9])
        np.testing.assert_array_equal(out['gt_ignore_flags'], [False, False])
        assert out['img_shape'] == (10, 10)


def test_registry_names():
    for name in (
        'Mosaic',
        'MultiModalMosaic',
        'YOLOv5MixUp',
        'YOLOv5MultiModalMixUp',
        'YOLOv5RandomAffine',
        'LetterResize',
        'YOLOv5KeepRatioResize',
        'YOLOv5CopyPaste',
        'YOLOv5HSVRandomAug',
        'RandomLoadText',
        'LoadText',
        'RemoveDataElement',
        'Albu',
        'CachedMosaic',
        'CachedMixUp',
    ):
        assert TRANSFORMS.get(name) is not None, name
