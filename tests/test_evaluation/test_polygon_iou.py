"""Exact quadrilateral IoU and polygon NMS against shapely on random and hand-made shapes."""

import numpy as np
import pytest
import shapely

from ai4rs.evaluation.functional.polygon_iou import (
    aabb_overlap_pairs,
    is_convex_quad,
    polygon_areas,
    polygon_iou,
    polygon_iou_aligned,
    polygon_nms,
)


def _shapely_iou(p, q):
    a = shapely.make_valid(shapely.polygons(p.reshape(-1, 4, 2)))
    b = shapely.make_valid(shapely.polygons(q.reshape(-1, 4, 2)))
    inter = shapely.area(shapely.intersection(a, b))
    union = shapely.area(a) + shapely.area(b) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0)


def _random_quads(rng, n, convex=True):
    centre = rng.uniform(0, 20, (n, 1, 2))
    angles = rng.uniform(0, 2 * np.pi, (n, 4))
    if convex:
        angles = np.sort(angles, axis=1)  # star-shaped around the centre, sorted: convex-ish
    radius = rng.uniform(1, 8, (n, 4))
    pts = centre + np.stack([radius * np.cos(angles), radius * np.sin(angles)], -1)
    return pts.reshape(n, 8)


def _rects(rng, n):
    c = rng.uniform(0, 20, (n, 1, 2))
    w, h, t = rng.uniform(1, 8, n), rng.uniform(1, 8, n), rng.uniform(-3, 3, n)
    v1 = np.stack([w / 2 * np.cos(t), w / 2 * np.sin(t)], -1)
    v2 = np.stack([-h / 2 * np.sin(t), h / 2 * np.cos(t)], -1)
    return (c + np.stack([v1 + v2, v1 - v2, -v1 - v2, -v1 + v2], 1)).reshape(n, 8)


def test_random_quads_match_shapely():
    rng = np.random.default_rng(0)
    # rectangles, sorted-angle (mostly convex, some concave) and unsorted (bow ties) quads
    p = np.concatenate([_rects(rng, 300), _random_quads(rng, 300), _random_quads(rng, 100, False)])
    q = np.concatenate([_rects(rng, 300), _random_quads(rng, 300), _random_quads(rng, 100, False)])
    assert (~is_convex_quad(p)).sum() > 50  # both code paths are exercised
    np.testing.assert_allclose(polygon_iou_aligned(p, q), _shapely_iou(p, q), atol=1e-9)


def test_hand_computed_and_orientation():
    a = np.array([[0, 0, 2, 0, 2, 1, 0, 1]], float)  # 2 x 1
    b = np.array([[0, 0, 1, 0, 1, 1, 0, 1]], float)  # 1 x 1 inside it
    assert polygon_iou_aligned(a, b)[0] == 0.5
    # clockwise order and another start vertex give the same IoU
    assert (
        polygon_iou_aligned(a[:, [6, 7, 4, 5, 2, 3, 0, 1]], b[:, [2, 3, 0, 1, 6, 7, 4, 5]])[0]
        == 0.5
    )
    np.testing.assert_allclose(polygon_areas(np.concatenate([a, b])), [2, 1])
    # touching squares: IoU 0, and not even a candidate pair
    c = np.array([[2, 0, 3, 0, 3, 1, 2, 1]], float)
    assert polygon_iou(a, c)[0, 0] == 0
    assert len(aabb_overlap_pairs(np.array([[0, 0, 2, 1.0]]), np.array([[2, 0, 3, 1.0]]))[0]) == 0
    # a degenerate (zero-area) quad has IoU 0 with anything
    line = np.array([[0, 0, 1, 0, 2, 0, 1, 0]], float)
    assert polygon_iou_aligned(line, a)[0] == 0
    # 45-degree diamond in a 2x2 square: area 2, IoU 2/4
    sq = np.array([[0, 0, 2, 0, 2, 2, 0, 2]], float)
    diamond = np.array([[1, 0, 2, 1, 1, 2, 0, 1]], float)
    assert polygon_iou_aligned(sq, diamond)[0] == pytest.approx(0.5, abs=1e-12)


def test_dense_matrix_equals_aligned():
    rng = np.random.default_rng(1)
    p, q = _rects(rng, 20), _rects(rng, 15)
    dense = polygon_iou(p, q)
    ii, jj = np.meshgrid(np.arange(20), np.arange(15), indexing='ij')
    np.testing.assert_allclose(
        dense, _shapely_iou(p[ii.ravel()], q[jj.ravel()]).reshape(20, 15), atol=1e-9
    )


def test_polygon_nms_greedy():
    sq = lambda x: [x, 0, x + 10, 0, x + 10, 10, x, 10]  # noqa: E731
    polys = np.array([sq(0), sq(1), sq(20), sq(9)], float)
    scores = np.array([0.5, 0.9, 0.3, 0.8])
    # 1 (0.9) suppresses 0 (IoU 90/110) and 3 (IoU 20/180 = 0.111 > 0.1); 2 overlaps nothing
    keep = polygon_nms(polys, scores, 0.1)
    assert keep.tolist() == [1, 2]
    keep = polygon_nms(polys, scores, 0.5)  # only 0 goes
    assert keep.tolist() == [1, 3, 2]


def test_bad_shape_names_argument():
    with pytest.raises(ValueError, match='polys1'):
        polygon_iou_aligned(np.zeros((2, 5)), np.zeros((2, 8)))


def test_aabb_overlap_pairs_matches_all_pairs_brute_force():
    """The candidate pairs come from ai4rs.ops' sweep; they must equal the positive-area
    pairs of a dense all-pairs check, touching boxes excluded, sorted by (i, j)."""
    rng = np.random.default_rng(5)
    lo1 = rng.integers(0, 40, (60, 2)).astype(float)
    a = np.concatenate([lo1, lo1 + rng.integers(0, 8, (60, 2))], 1)  # some zero-width
    lo2 = rng.integers(0, 40, (50, 2)).astype(float)
    b = np.concatenate([lo2, lo2 + rng.integers(1, 8, (50, 2))], 1)  # integer: many touch
    i, j = aabb_overlap_pairs(a, b)
    expected = [
        (p, q)
        for p in range(len(a))
        for q in range(len(b))
        if min(a[p, 2], b[q, 2]) > max(a[p, 0], b[q, 0])
        and min(a[p, 3], b[q, 3]) > max(a[p, 1], b[q, 1])
    ]
    assert list(zip(i.tolist(), j.tolist())) == expected and len(expected) > 20
