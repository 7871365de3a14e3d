"""RotatedSimOTAAssigner: rotated in-box test, centre prior, dynamic k, no GT."""

import math

import pytest
import torch
from mmengine.structures import InstanceData

from ai4rs.models.task_modules import (
    MlvlPointGenerator,
    RBboxOverlaps2D,
    RotatedSimOTAAssigner,
)
from ai4rs.ops import points_in_rboxes
from ai4rs.registry import TASK_UTILS


def test_rotated_in_box_test_hand_checked():
    """The assigner's in-box test (points_in_rboxes): strict, and rotated."""
    # a 8x4 box turned by 90 degrees: covers x in [8, 12], y in [6, 14]
    box = torch.tensor([[10.0, 10.0, 8.0, 4.0, math.pi / 2]])
    points = torch.tensor([[10.0, 13.0], [13.0, 10.0], [12.0, 10.0], [10.0, 6.0]])
    # inside; outside; on the boundary (x = 12, y = 6): outside
    assert points_in_rboxes(points, box)[:, 0].tolist() == [True, False, False, False]
    # a 4x2 box at 45 degrees: (1.5, -0.9) is inside its axis-aligned
    # [-2, 2] x [-1, 1] extent but outside the rotated box; (1, 1) is inside
    box45 = torch.tensor([[0.0, 0.0, 4.0, 2.0, math.pi / 4]])
    pts = torch.tensor([[1.0, 1.0], [1.5, -0.9]])
    assert points_in_rboxes(pts, box45)[:, 0].tolist() == [True, False]


def _grid_priors(size=64, stride=8):
    """Cell-centre priors (x, y, s, s) as the head gives them to the assigner."""
    priors = MlvlPointGenerator([stride], offset=0.5).grid_priors(
        [(size // stride, size // stride)], with_stride=True
    )[0]
    return priors


FAR = [500.0, 500.0, 10.0, 10.0, 0.0]


def _case(gt_boxes, gt_labels, good_inds, good_box, scores):
    priors = _grid_priors()
    bboxes = torch.tensor(FAR).repeat(len(priors), 1)
    bboxes[good_inds] = torch.tensor(good_box)
    pred = InstanceData(priors=priors, bboxes=bboxes, scores=scores)
    gt = InstanceData(bboxes=torch.tensor(gt_boxes), labels=torch.tensor(gt_labels))
    return pred, gt


def _index(x, y, stride=8, size=64):
    """Index of the prior whose cell centre is (x, y)."""
    return int((y - stride / 2) / stride) * (size // stride) + int((x - stride / 2) / stride)


def test_candidates_in_box_and_centre():
    assigner = RotatedSimOTAAssigner()
    priors = _grid_priors()
    gt = torch.tensor([[32.0, 32.0, 40.0, 16.0, 0.0]])  # x in [12, 52], y in [24, 40]
    valid, in_both = assigner.get_in_gt_and_in_center_info(priors, gt)
    # centre square |p - c| < 2.5 * 8 = 20 -> x, y in {20, 28, 36, 44}
    in_centre = {(x, y) for x in (20, 28, 36, 44) for y in (20, 28, 36, 44)}
    in_box = {(x, y) for x in (20, 28, 36, 44) for y in (28, 36)}  # 12 and 52 are on the edge
    got = {(int(p[0]), int(p[1])) for p in priors[valid]}
    assert got == in_centre | in_box
    both = {(int(p[0]), int(p[1])) for p in priors[valid][in_both[:, 0]]}
    assert both == in_box & in_centre


def test_dynamic_k_from_ious():
    gt_box = [32.0, 32.0, 40.0, 20.0, 0.0]  # x in [12, 52], y in [22, 42]
    pred_box = [32.0, 32.0, 36.0, 20.0, 0.0]  # IoU = 36 * 20 / (40 * 20) = 0.9
    good = [_index(x, y) for x, y in ((20, 28), (28, 28), (36, 28), (28, 36), (44, 36))]
    scores = torch.full((64, 3), 0.5)
    scores[good[-1], 2] = 0.3  # the 5th good prior costs more: it is the one left out
    pred, gt = _case([gt_box], [2], good, pred_box, scores)
    result = RotatedSimOTAAssigner().assign(pred, gt)
    # the 5 IoUs of 0.9 sum to 4.5 -> k = 4
    pos = (result.gt_inds > 0).nonzero().squeeze(1).tolist()
    assert sorted(pos) == sorted(good[:4])
    assert result.labels[pos].tolist() == [2] * 4
    assert ((result.labels == -1) == (result.gt_inds == 0)).all()
    torch.testing.assert_close(result.max_overlaps[pos], torch.full((4,), 0.9), atol=1e-5, rtol=0)
    assert result.num_gts == 1 and result.num_preds == 64


def test_dynamic_k_at_least_one():
    pred, gt = _case([[32.0, 32.0, 20.0, 10.0, 0.0]], [0], [], [0.0] * 5, torch.full((64, 1), 0.5))
    result = RotatedSimOTAAssigner().assign(pred, gt)
    # all IoUs are 0, k = max(1, 0) = 1: the lowest-cost in-box prior is taken
    assert int((result.gt_inds > 0).sum()) == 1
    assert result.max_overlaps[result.gt_inds > 0].item() == pytest.approx(0.0)


def test_shared_prior_goes_to_cheapest_gt():
    box = [32.0, 32.0, 16.0, 16.0, 0.0]
    good = [_index(28, 28), _index(36, 36)]
    scores = torch.full((64, 2), 0.5)
    scores[good] = torch.tensor([0.1, 0.9])  # class 1 is much more likely
    pred, gt = _case([box, box], [0, 1], good, box, scores)
    result = RotatedSimOTAAssigner().assign(pred, gt)
    # both GTs want the same 2 priors (IoU 1, k = 2); the class-1 GT costs less
    assert result.gt_inds[good].tolist() == [2, 2]
    assert int((result.gt_inds > 0).sum()) == 2
    assert result.labels[good].tolist() == [1, 1]


def test_no_gt_and_no_candidates_are_background():
    priors = _grid_priors()
    pred = InstanceData(
        priors=priors, bboxes=torch.tensor(FAR).repeat(64, 1), scores=torch.full((64, 4), 0.5)
    )
    empty = InstanceData(bboxes=torch.zeros(0, 5), labels=torch.zeros(0, dtype=torch.long))
    far_gt = InstanceData(
        bboxes=torch.tensor([[1000.0, 1000.0, 10.0, 10.0, 0.0]]), labels=torch.tensor([1])
    )
    for gt, num_gts in ((empty, 0), (far_gt, 1)):
        result = RotatedSimOTAAssigner().assign(pred, gt)
        assert result.num_gts == num_gts
        assert (result.gt_inds == 0).all() and (result.labels == -1).all()
        assert (result.max_overlaps == 0).all()


def test_registry_and_iou_calculator():
    assigner = TASK_UTILS.build(dict(type='RotatedSimOTAAssigner', center_radius=2.5))
    assert isinstance(assigner.iou_calculator, RBboxOverlaps2D)
    calc = RBboxOverlaps2D()
    a = torch.tensor([[0.0, 0.0, 4.0, 2.0, 0.0, 0.9]])  # a score column is dropped
    b = torch.tensor([[0.0, 0.0, 2.0, 2.0, 0.0], [10.0, 0.0, 2.0, 2.0, 0.0]])
    torch.testing.assert_close(calc(a, b), torch.tensor([[0.5, 0.0]]))
    # degenerate predictions (zero size) give finite IoUs
    z = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0]])
    assert torch.isfinite(calc(z, b)).all()
    assert calc(torch.zeros(0, 5), b).shape == (0, 2)
    with pytest.raises(ValueError, match='columns'):
        calc(torch.zeros(2, 4), b)


def test_onehot_bce_cost_equals_expanded_binary_cross_entropy():
    import torch.nn.functional as F

    from ai4rs.models.task_modules.assigners.rotated_sim_ota_assigner import onehot_bce_cost

    gen = torch.Generator().manual_seed(0)
    scores = torch.rand(300, 15, generator=gen)
    scores[0, 3] = 0.0  # log clamped at -100, as BCE does
    scores[1, 4] = 1.0
    labels = torch.randint(0, 15, (40,), generator=gen)
    labels[:2] = torch.tensor([3, 4])
    expected = F.binary_cross_entropy(
        scores[:, None, :].expand(-1, 40, -1),
        F.one_hot(labels, 15).float()[None].expand(300, -1, -1),
        reduction='none',
    ).sum(-1)
    cost = onehot_bce_cost(scores, labels)
    assert cost.shape == (300, 40)
    torch.testing.assert_close(cost, expected, rtol=1e-5, atol=1e-4)
    # the clamped cases: p = 0 for the GT's class, p = 1 for another class
    assert cost[0, 0] >= 100
    assert (cost[1, labels != 4] >= 100).all() and cost[1, 1] < 100
