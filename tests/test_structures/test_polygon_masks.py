"""PolygonMasks and the polygon helpers against hand-computed values and pycocotools."""

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from ai4rs.structures.mask import (
    PolygonMasks,
    boxes_of_points_inside,
    merge_polygon_segments,
    polygon_area,
    resample_polygon,
    warp_polygon,
)


def square(x1, y1, x2, y2):
    return np.array([x1, y1, x2, y1, x2, y2, x1, y2], dtype=np.float64)


def make():
    return PolygonMasks(
        [
            [square(1, 2, 10, 8)],
            [np.array([0.0, 0, 4, 0, 2, 3]), np.array([20.0, 20, 22, 20, 21, 25])],
        ],
        32,
        40,
    )


def test_boxes_areas_len_index_cat():
    m = make()
    assert len(m) == 2
    np.testing.assert_allclose(m.get_bboxes().tensor.numpy(), [[1, 2, 10, 8], [0, 0, 22, 25]])
    np.testing.assert_allclose(m.areas, [9 * 6, 4 * 3 / 2 + 2 * 5 / 2])
    assert len(m[np.array([False, True])]) == 1
    assert m[1].masks[0][1][0] == 20
    assert m[[1, 0]].masks[1][0][0] == 1
    cat = PolygonMasks.cat([m, m[0]])
    assert len(cat) == 3 and (cat.height, cat.width) == (32, 40)
    with pytest.raises(ValueError):
        PolygonMasks.cat([])


def test_flip_translate_resize_rescale_crop_clip():
    m = PolygonMasks([[square(1, 2, 10, 8)]], 32, 40)
    np.testing.assert_allclose(m.flip('horizontal').masks[0][0], [39, 2, 30, 2, 30, 8, 39, 8])
    np.testing.assert_allclose(m.flip('vertical').masks[0][0], [1, 30, 10, 30, 10, 24, 1, 24])
    np.testing.assert_allclose(m.flip('diagonal').get_bboxes().tensor.numpy(), [[30, 24, 39, 30]])
    t = m.translate((32, 40), 35, 'horizontal')
    np.testing.assert_allclose(t.masks[0][0][0::2], [36, 40, 40, 36])  # clipped to the width
    t = m.translate((64, 64), 5, 'vertical')
    np.testing.assert_allclose(t.masks[0][0][1::2], [7, 7, 13, 13])
    assert (t.height, t.width) == (64, 64)
    r = m.resize((64, 20))
    np.testing.assert_allclose(r.masks[0][0], [0.5, 4, 5, 4, 5, 16, 0.5, 16])
    r = m.rescale(0.5)
    assert (r.height, r.width) == (16, 20)
    np.testing.assert_allclose(r.masks[0][0], square(0.5, 1, 5, 4))
    c = m.crop(np.array([2, 3, 30, 30]))
    np.testing.assert_allclose(c.masks[0][0], square(-1, -1, 8, 5))
    c = m.clip(5, 6)
    np.testing.assert_allclose(c.masks[0][0], square(1, 2, 6, 5))
    assert m.masks[0][0][0] == 1  # never modified in place
    p = m.pad((50, 60))
    assert (p.height, p.width) == (50, 60) and p.masks[0][0] is m.masks[0][0]
    with pytest.raises(ValueError):
        m.translate((32, 40), 1, border_value=5)


def test_to_ndarray_matches_pycocotools():
    m = make()
    bitmaps = m.to_ndarray()
    assert bitmaps.shape == (2, 32, 40)
    rle = mask_utils.frPyObjects([square(1, 2, 10, 8).tolist()], 32, 40)
    np.testing.assert_array_equal(bitmaps[0], mask_utils.decode(rle)[..., 0])


def test_resample_polygon_points_on_edges():
    tri = np.array([0.0, 0, 30, 0, 0, 30])
    pts = resample_polygon(tri, 1000).reshape(-1, 2)
    assert pts.shape == (1000, 2)
    np.testing.assert_allclose(pts[0], [0, 0])
    np.testing.assert_allclose(pts[-1], [0, 0])
    # 3 edges and 999 steps: the vertices are sampled exactly
    np.testing.assert_allclose(pts[333], [30, 0], atol=1e-9)
    np.testing.assert_allclose(pts[666], [0, 30], atol=1e-9)
    on_edge = (
        np.isclose(pts[:, 1], 0) | np.isclose(pts[:, 0], 0) | np.isclose(pts[:, 0] + pts[:, 1], 30)
    )
    assert on_edge.all()


def test_warp_polygon_and_inside_boxes():
    matrix = np.array([[2.0, 0, 5], [0, 3, -1], [0, 0, 1]])
    np.testing.assert_allclose(warp_polygon(np.array([1.0, 1, 2, 4]), matrix), [7, 2, 9, 11])
    boxes = boxes_of_points_inside(
        [[np.array([-5.0, 2, 10, 3, 12, 50])], [np.array([-1.0, -1, -2, -2, -3, -1])]], 20, 20
    )
    np.testing.assert_allclose(boxes, [[10, 3, 10, 3], [0, 0, 0, 0]])


def test_polygon_area():
    assert polygon_area(square(0, 0, 3, 4)) == 12


def test_merge_polygon_segments_visits_every_point():
    a, b, c = square(0, 0, 2, 2), square(10, 0, 12, 2), square(20, 0, 22, 2)
    merged = merge_polygon_segments([a, b, c]).reshape(-1, 2)
    for seg in (a, b, c):
        for p in seg.reshape(-1, 2):
            assert (np.abs(merged - p).sum(1) < 1e-9).any()
    # the path links b to a at their closest points: (2, y) and (10, y)
    assert merge_polygon_segments([a]).shape == (8,)
    np.testing.assert_allclose(merged.min(0), [0, 0])
    np.testing.assert_allclose(merged.max(0), [22, 2])
