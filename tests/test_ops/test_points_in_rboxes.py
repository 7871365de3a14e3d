import math

import numpy as np
import pytest
import shapely
import torch

from ai4rs.ops import points_in_rboxes
from tests.test_ops.rbox_shapely_reference import random_rboxes, rbox_polygons


def test_matches_shapely_strict_containment(device):
    rng = np.random.default_rng(0)
    boxes = random_rboxes(rng, 40, span=50, size=(0.5, 20))
    points = rng.uniform(-5, 55, (500, 2))
    polys = rbox_polygons(boxes)
    expected = shapely.contains_xy(polys[None, :], points[:, :1], points[:, 1:])
    out = points_in_rboxes(torch.from_numpy(points).to(device), torch.from_numpy(boxes).to(device))
    assert out.device.type == device
    out = out.cpu()
    assert out.shape == (500, 40) and out.dtype == torch.bool
    assert expected.any()
    np.testing.assert_array_equal(out.numpy(), expected)


def test_boundary_points_and_zero_size_boxes_are_outside(device):
    boxes = torch.tensor([[0, 0, 4, 2, 0], [10, 10, 0, 0, 0], [0, 0, 4, 2, math.pi / 2]])
    points = torch.tensor([[0, 0], [2, 0], [0, 1], [1.9, 0.9], [10, 10], [0.9, 1.9]])
    # (2, 0) and (0, 1) lie on the border of box 0; (0, 1) is inside the turned box 2
    expected = torch.tensor(
        [
            [True, False, True],
            [False, False, False],
            [False, False, True],
            [True, False, False],
            [False, False, False],
            [False, False, True],
        ]
    )
    assert torch.equal(points_in_rboxes(points.to(device), boxes.to(device)).cpu(), expected)


def test_empty_and_invalid_inputs():
    assert points_in_rboxes(torch.zeros(0, 2), torch.zeros(3, 5)).shape == (0, 3)
    assert points_in_rboxes(torch.zeros(4, 2), torch.zeros(0, 5)).shape == (4, 0)
    with pytest.raises(ValueError, match='points'):
        points_in_rboxes(torch.zeros(4, 3), torch.zeros(2, 5))
    with pytest.raises(ValueError, match='rboxes'):
        points_in_rboxes(torch.zeros(4, 2), torch.zeros(2, 4))
