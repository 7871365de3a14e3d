"""DistanceAnglePointCoder and equivalent_rbox_nearest: hand-computed cases and invariants."""

import math

import pytest
import torch

from ai4rs.models.task_modules.coders import (
    DistanceAnglePointCoder,
    equivalent_rbox_nearest,
)
from ai4rs.registry import TASK_UTILS
from ai4rs.structures.bbox import rbox_corners

PI = math.pi


def build(**kwargs):
    return TASK_UTILS.build(dict(type='DistanceAnglePointCoder', **kwargs))


def random_boxes_and_inside_points(n, seed=0):
    """(n, 5) boxes with t in [-pi/2, pi/2) and (n, 2) points strictly inside them."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, 7, generator=g, dtype=torch.float64)
    ctr = u[:, :2] * 100
    wh = 1 + u[:, 2:4] * 50
    t = -PI / 2 + u[:, 4] * PI
    boxes = torch.cat([ctr, wh, t[:, None]], 1)
    local = (u[:, 5:7] * 1.8 - 0.9) * wh / 2  # (ox, oy) in the box frame, inside
    cos, sin = torch.cos(t), torch.sin(t)
    pts = ctr + torch.stack(
        [cos * local[:, 0] - sin * local[:, 1], sin * local[:, 0] + cos * local[:, 1]], 1
    )
    return boxes, pts


def test_encode_hand_cases_4x2_box_at_0_and_pi_over_2():
    coder = build()
    box0 = torch.tensor([[10.0, 20.0, 4.0, 2.0, 0.0]], dtype=torch.float64)
    # point (11, 20.5): offset (1, 0.5) in the box frame -> l = 2 + 1, t = 1 + 0.5, r, b
    dist0 = coder.encode(torch.tensor([[11.0, 20.5]], dtype=torch.float64), box0)
    torch.testing.assert_close(dist0, torch.tensor([[3.0, 1.5, 1.0, 0.5]], dtype=torch.float64))
    # at pi/2 the box's x axis is the image's +y (down), its y axis the image's -x: the point
    # (10.5, 21), image offset (0.5, 1), is (1, -0.5) in the box frame
    box90 = torch.tensor([[10.0, 20.0, 4.0, 2.0, PI / 2]], dtype=torch.float64)
    point90 = torch.tensor([[10.5, 21.0]], dtype=torch.float64)
    dist90 = coder.encode(point90, box90)
    torch.testing.assert_close(dist90, torch.tensor([[3.0, 0.5, 1.0, 1.5]], dtype=torch.float64))
    # clamped DFL targets: [0, max_dis - eps]; a point outside gets 0 on the far side
    torch.testing.assert_close(
        coder.encode(torch.tensor([[11.0, 20.5]], dtype=torch.float64), box0, max_dis=2, eps=0.1),
        torch.tensor([[1.9, 1.5, 1.0, 0.5]], dtype=torch.float64),
    )
    outside = coder.encode(torch.tensor([[13.0, 20.0]], dtype=torch.float64), box0, max_dis=16)
    torch.testing.assert_close(outside, torch.tensor([[5.0, 1.0, 0.0, 1.0]], dtype=torch.float64))


def test_decode_hand_cases_and_le90_wrap_without_swap():
    coder = build(angle_version='le90')
    d = torch.tensor([[3.0, 1.5, 1.0, 0.5]], dtype=torch.float64)
    out0 = coder.decode(torch.tensor([[11.0, 20.5]], dtype=torch.float64), d, d.new_zeros(1, 1))
    torch.testing.assert_close(
        out0, torch.tensor([[10.0, 20.0, 4.0, 2.0, 0.0]], dtype=torch.float64)
    )
    # box-frame centre offset ((r - l)/2, (b - t)/2) = (-1, 0.5), turned by pi/2 -> (-0.5, -1);
    # the angle pi/2 wraps to -pi/2 in le90 with w, h kept (4, 2)
    d90 = torch.tensor([[3.0, 0.5, 1.0, 1.5]], dtype=torch.float64)
    out90 = coder.decode(
        torch.tensor([[10.5, 21.0]], dtype=torch.float64), d90, d90.new_full((1, 1), PI / 2)
    )
    torch.testing.assert_close(
        out90, torch.tensor([[10.0, 20.0, 4.0, 2.0, -PI / 2]], dtype=torch.float64)
    )


@pytest.mark.parametrize(
    'angle, expected',
    [(-PI / 2, -PI / 2), (PI / 2 - 1e-3, PI / 2 - 1e-3), (PI / 2 + 1e-3, -PI / 2 + 1e-3)],
)
def test_decode_angle_at_le90_boundaries(angle, expected):
    coder = build(angle_version='le90')
    points = torch.tensor([[5.0, 7.0]], dtype=torch.float64)
    dist = torch.tensor([[1.0, 2.0, 3.0, 0.5]], dtype=torch.float64)
    out = coder.decode(points, dist, dist.new_full((1, 1), angle))
    assert out[0, 4].item() == pytest.approx(expected, abs=1e-12)
    torch.testing.assert_close(out[0, 2:4], dist.new_tensor([4.0, 2.5]))  # not swapped
    # the centre uses the raw angle: the same rectangle as without wrapping
    raw = build(angle_version='oc').decode(points, dist, dist.new_full((1, 1), angle))
    assert raw[0, 4].item() == pytest.approx(angle, abs=1e-12)
    torch.testing.assert_close(out[0, :4], raw[0, :4])
    same = (rbox_corners(out)[0, :, None] - rbox_corners(raw)[0, None]).norm(dim=-1)
    assert (same.amin(1) < 1e-9).all()


def test_decode_encode_round_trip_on_random_boxes():
    coder = build(angle_version='le90')
    boxes, pts = random_boxes_and_inside_points(200)
    dist = coder.encode(pts, boxes)
    assert (dist > 0).all()
    back = coder.decode(pts, dist, boxes[:, 4:])
    torch.testing.assert_close(back, boxes, atol=1e-5, rtol=0)


def test_decode_broadcasts_points_over_a_batch():
    coder = build()
    boxes, pts = random_boxes_and_inside_points(12, seed=1)
    dist = torch.rand(2, 12, 4, dtype=torch.float64) * 10
    angle = torch.rand(2, 12, 1, dtype=torch.float64) - 0.5
    out = coder.decode(pts, dist, angle)
    assert out.shape == (2, 12, 5)
    for b in range(2):
        torch.testing.assert_close(out[b], coder.decode(pts, dist[b], angle[b]))
    # and the distances over a batch of points
    pts2 = torch.stack([pts, pts + 1])
    out2 = coder.decode(pts2, dist[0], angle[0])
    assert out2.shape == (2, 12, 5)
    torch.testing.assert_close(out2[1], out[0] + out.new_tensor([1, 1, 0, 0, 0]))


def test_equivalent_rbox_nearest_hand_case():
    box = torch.tensor([3.0, 4.0, 4.0, 2.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(equivalent_rbox_nearest(box, torch.tensor(0.7)), box)
    torch.testing.assert_close(
        equivalent_rbox_nearest(box, torch.tensor(0.8)),
        torch.tensor([3.0, 4.0, 2.0, 4.0, PI / 2], dtype=torch.float64),
    )
    torch.testing.assert_close(
        equivalent_rbox_nearest(box, torch.tensor(-3.0)),
        torch.tensor([3.0, 4.0, 4.0, 2.0, -PI], dtype=torch.float64),
    )


def test_equivalent_rbox_nearest_same_polygon_and_angle_near_reference():
    boxes, _ = random_boxes_and_inside_points(300, seed=2)
    ref = (torch.rand(300, dtype=torch.float64) - 0.5) * 4 * PI
    eq = equivalent_rbox_nearest(boxes, ref)
    assert ((eq[:, 4] - ref).abs() <= PI / 4 + 1e-12).all()
    # same corners as a set: every corner of one matches a corner of the other
    dists = (rbox_corners(eq)[:, :, None] - rbox_corners(boxes)[:, None]).norm(dim=-1)
    assert (dists.amin(-1) < 1e-9).all() and (dists.amin(-2) < 1e-9).all()
    # the angle moved by a multiple of pi/2, with w and h swapped exactly for odd multiples
    k = (eq[:, 4] - boxes[:, 4]) / (PI / 2)
    torch.testing.assert_close(k, k.round(), atol=1e-9, rtol=0)
    odd = k.round().remainder(2) == 1
    assert odd.any() and (~odd).any()
    torch.testing.assert_close(eq[odd, 2:4], boxes[odd, 2:4].flip(-1))
    torch.testing.assert_close(eq[~odd, 2:4], boxes[~odd, 2:4])


@pytest.mark.parametrize('k', [-2, -1, 1, 2, 3])
def test_encode_of_equivalent_boxes_rotates_the_distances(k):
    """The box as (c, h, w, t + pi/2) sees the point a quarter turn back: (l, t, r, b) of the
    original become (t, r, b, l); k quarter turns roll the distances by -k."""
    coder = build()
    boxes, pts = random_boxes_and_inside_points(50, seed=3)
    ref = boxes[:, 4] + k * PI / 2
    eq = equivalent_rbox_nearest(boxes, ref)
    torch.testing.assert_close(eq[:, 4], ref)
    torch.testing.assert_close(
        coder.encode(pts, eq), coder.encode(pts, boxes).roll(-k, dims=-1), atol=1e-9, rtol=0
    )


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="angle_version.*'le45'"):
        DistanceAnglePointCoder(angle_version='le45')
    coder = build()
    pts = torch.zeros(3, 2)
    with pytest.raises(ValueError, match=r'distance must have shape \(\.\.\., 4\).*\(3, 5\)'):
        coder.decode(pts, torch.zeros(3, 5), torch.zeros(3, 1))
    with pytest.raises(ValueError, match=r'angle must have shape \(\.\.\., 1\)'):
        coder.decode(pts, torch.zeros(3, 4), torch.zeros(3))
    with pytest.raises(ValueError, match=r'do not broadcast.*\(4, 4\)'):
        coder.decode(pts, torch.zeros(4, 4), torch.zeros(4, 1))
    with pytest.raises(ValueError, match=r'gt_bboxes must have shape \(\.\.\., 5\)'):
        coder.encode(pts, torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r'rboxes must be \(\.\.\., 5\)'):
        equivalent_rbox_nearest(torch.zeros(3, 4), torch.zeros(3))
