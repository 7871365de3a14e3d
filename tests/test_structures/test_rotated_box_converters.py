import math

import numpy as np
import pytest
import shapely
import torch

from ai4rs.structures.bbox import (
    distance2obb,
    hbox2qbox,
    hbox2rbox,
    min_area_rect,
    norm_angle,
    qbox2hbox,
    qbox2rbox,
    rbox2hbox,
    rbox2qbox,
    regularize_rboxes,
)

RANGES = {
    'le90': (-math.pi / 2, math.pi / 2),
    'le135': (-math.pi / 4, 3 * math.pi / 4),
    'oc': (-math.pi / 2, 0.0),
}


def random_rboxes(rng, n, dtype=torch.float64):
    ctr = rng.uniform(-500, 1500, (n, 2))
    wh = rng.uniform(1, 200, (n, 2))
    t = rng.uniform(-2 * np.pi, 2 * np.pi, (n, 1))
    return torch.from_numpy(np.concatenate([ctr, wh, t], 1)).to(dtype)


def same_geometry(a, b, atol):
    """Corners of (N, 5) boxes a and b coincide as point sets."""
    ca, cb = rbox2qbox(a).reshape(-1, 4, 1, 2), rbox2qbox(b).reshape(-1, 1, 4, 2)
    dist = (ca - cb).norm(dim=-1).amin(dim=-1)  # each corner of a to the nearest of b
    return bool((dist <= atol).all())


def test_rbox2qbox_corner_order_hand_case():
    box = torch.tensor([[0.0, 0, 4, 2, 0], [10, 20, 4, 2, math.pi / 2]])
    expected = torch.tensor([[2.0, 1, 2, -1, -2, -1, -2, 1], [9, 22, 11, 22, 11, 18, 9, 18]])
    torch.testing.assert_close(rbox2qbox(box), expected, atol=1e-5, rtol=0)


def test_horizontal_converters_hand_case():
    hbox = torch.tensor([[1.0, 2, 5, 4]])
    torch.testing.assert_close(hbox2rbox(hbox), torch.tensor([[3.0, 3, 4, 2, 0]]))
    torch.testing.assert_close(hbox2qbox(hbox), torch.tensor([[1.0, 2, 5, 2, 5, 4, 1, 4]]))
    torch.testing.assert_close(qbox2hbox(hbox2qbox(hbox)), hbox)
    torch.testing.assert_close(rbox2hbox(hbox2rbox(hbox)), hbox)


def test_rbox2hbox_is_the_corner_bounding_box():
    boxes = random_rboxes(np.random.default_rng(0), 200)
    corners = rbox2qbox(boxes).reshape(-1, 4, 2)
    expected = torch.cat([corners.amin(1), corners.amax(1)], dim=1)
    torch.testing.assert_close(rbox2hbox(boxes), expected)


@pytest.mark.parametrize('version', ['le90', 'le135', 'oc'])
def test_regularize_ranges_and_geometry(version):
    boxes = random_rboxes(np.random.default_rng(1), 500)
    reg = regularize_rboxes(boxes, version)
    lo, hi = RANGES[version]
    assert (reg[:, 4] >= lo).all() and (reg[:, 4] < hi).all()
    if version != 'oc':
        assert (reg[:, 2] >= reg[:, 3]).all()
    assert same_geometry(reg, boxes, atol=1e-8)
    torch.testing.assert_close(regularize_rboxes(reg, version), reg)


def test_regularize_matches_upstream_rules_on_hand_cases():
    box = torch.tensor([[0.0, 0, 2, 5, 0.5]])
    # le90: h > w -> swap and add pi/2
    torch.testing.assert_close(
        regularize_rboxes(box, 'le90'), torch.tensor([[0.0, 0, 5, 2, 0.5 + math.pi / 2 - math.pi]])
    )
    # oc: angle 0.5 wraps to 0.5 + pi/2 >= pi/2 -> swap, t = 0.5 - pi/2
    torch.testing.assert_close(
        regularize_rboxes(box, 'oc'), torch.tensor([[0.0, 0, 5, 2, 0.5 - math.pi / 2]])
    )
    # le135 keeps 0.5 + pi/2 (inside [-pi/4, 3pi/4))
    torch.testing.assert_close(
        regularize_rboxes(box, 'le135'), torch.tensor([[0.0, 0, 5, 2, 0.5 + math.pi / 2]])
    )
    with pytest.raises(ValueError, match='angle_version'):
        regularize_rboxes(box, 'le180')


def test_norm_angle():
    a = torch.tensor([-4.0, -1.0, 0.0, 2.0, 3.5])
    torch.testing.assert_close(norm_angle(a, 'le90'), (a + math.pi / 2) % math.pi - math.pi / 2)
    torch.testing.assert_close(norm_angle(a, 'le135'), (a + math.pi / 4) % math.pi - math.pi / 4)
    assert norm_angle(a, 'oc') is a
    assert abs(norm_angle(3 * math.pi / 4, 'le90') + math.pi / 4) < 1e-12
    with pytest.raises(ValueError):
        norm_angle(a, 'bad')


@pytest.mark.parametrize('version', ['le90', 'le135', 'oc'])
@pytest.mark.parametrize('dtype,atol', [(torch.float64, 1e-7), (torch.float32, 1e-3)])
def test_rbox_qbox_rbox_round_trip(version, dtype, atol):
    boxes = regularize_rboxes(random_rboxes(np.random.default_rng(2), 2000), version)
    lo, hi = RANGES[version]
    # stay away from the two representation ambiguities: squares and range boundaries
    clear = (
        ((boxes[:, 2] - boxes[:, 3]).abs() > 1e-2)
        & (boxes[:, 4] - lo > 1e-3)
        & (hi - boxes[:, 4] > 1e-3)
    )
    boxes = boxes[clear].to(dtype)
    back = qbox2rbox(rbox2qbox(boxes), version)
    assert back.dtype == dtype
    torch.testing.assert_close(back, boxes, atol=atol, rtol=0)


@pytest.mark.parametrize('version', ['le90', 'le135', 'oc'])
def test_qbox2rbox_near_boundaries_and_squares_keep_geometry(version):
    lo, _ = RANGES[version]
    boxes = torch.tensor(
        [[5.0, 5, 10, 10, 0.3], [5, 5, 10, 4, lo], [5, 5, 10, 4, lo + math.pi], [0, 0, 3, 3, lo]],
        dtype=torch.float64,
    )
    back = qbox2rbox(rbox2qbox(boxes), version)
    assert same_geometry(back, boxes, atol=1e-9)
    reg_lo, reg_hi = RANGES[version]
    assert (back[:, 4] >= reg_lo).all() and (back[:, 4] < reg_hi).all()


def test_qbox2rbox_is_the_minimum_area_rectangle_of_any_quadrilateral():
    rng = np.random.default_rng(3)
    quads = []
    for _ in range(200):
        # convex and non-convex quads, random start vertex and orientation
        pts = rng.uniform(0, 100, (4, 2))
        quads.append(pts[:: rng.choice([-1, 1])])
    quads = np.stack(quads)
    out = qbox2rbox(torch.from_numpy(quads.reshape(-1, 8)))
    expected_area = shapely.area(shapely.minimum_rotated_rectangle(shapely.multipoints(quads)))
    np.testing.assert_allclose((out[:, 2] * out[:, 3]).numpy(), expected_area, rtol=1e-9, atol=1e-9)
    # every input point lies in the rectangle
    rect = shapely.polygons(rbox2qbox(out).reshape(-1, 4, 2).numpy())
    grown = shapely.buffer(rect, 1e-7)
    for k in range(4):
        assert shapely.contains_xy(grown, quads[:, k, 0], quads[:, k, 1]).all()


def test_min_area_rect_degenerate_point_sets():
    pts = torch.tensor([[[3.0, 4], [3, 4], [3, 4], [3, 4]], [[0.0, 0], [1, 1], [2, 2], [3, 3]]])
    out = min_area_rect(pts, 'le90')
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0], torch.tensor([3.0, 4, 0, 0, out[0, 4]]))
    torch.testing.assert_close(out[1, :4], torch.tensor([1.5, 1.5, 3 * math.sqrt(2), 0]))
    assert abs(out[1, 4] - math.pi / 4) < 1e-6


def test_converters_keep_batch_shape_and_dtype():
    boxes = random_rboxes(np.random.default_rng(4), 6, torch.float32).reshape(2, 3, 5)
    q = rbox2qbox(boxes)
    assert q.shape == (2, 3, 8) and q.dtype == torch.float32
    assert qbox2rbox(q).shape == (2, 3, 5)
    assert rbox2hbox(boxes).shape == (2, 3, 4)


def test_distance2obb_hand_case():
    points = torch.tensor([[10.0, 20], [10, 20]])
    dist = torch.tensor([[1.0, 2, 3, 4, 0], [1, 2, 3, 4, math.pi / 2]])
    # sizes (l + r, t + b) = (4, 6); centre offset ((r - l)/2, (b - t)/2) = (1, 1) in the box
    # frame, turned clockwise on screen by the angle: (1, 1) -> (-1, 1) for pi/2
    expected = torch.tensor([[11.0, 21, 4, 6, 0], [9, 21, 4, 6, math.pi / 2]])
    torch.testing.assert_close(distance2obb(points, dist, 'oc'), expected)
    le90 = distance2obb(points, dist, 'le90')
    torch.testing.assert_close(le90[1, 4], torch.tensor(-math.pi / 2))
