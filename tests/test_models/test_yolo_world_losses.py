"""IoU-family overlaps / IoULoss, DistributionFocalLoss and DistancePointBBoxCoder of YOLO-World,
against formulas written out here with Python scalars."""

import math

import pytest
import torch

from ai4rs.models.losses import DistributionFocalLoss, IoULoss, bbox_overlaps
from ai4rs.models.task_modules.coders import DistancePointBBoxCoder, distance2bbox
from ai4rs.registry import MODELS, TASK_UTILS

# (pred, target) pairs (x1, y1, x2, y2): overlapping, disjoint, nested, identical, other aspect
BOX_PAIRS = [
    ((0.0, 0.0, 10.0, 10.0), (5.0, 5.0, 15.0, 20.0)),
    ((0.0, 0.0, 4.0, 4.0), (10.0, 12.0, 14.0, 20.0)),
    ((2.0, 3.0, 30.0, 25.0), (10.0, 8.0, 20.0, 16.0)),
    ((7.0, 7.0, 19.0, 31.0), (7.0, 7.0, 19.0, 31.0)),
    ((1.0, 1.0, 21.0, 6.0), (3.0, 0.0, 8.0, 22.0)),
]


def scalar_iou_terms(p, t):
    """IoU, centre distance^2, enclosing diagonal^2, enclosing area, union of two boxes."""
    iw = max(0.0, min(p[2], t[2]) - max(p[0], t[0]))
    ih = max(0.0, min(p[3], t[3]) - max(p[1], t[1]))
    inter = iw * ih
    union = (p[2] - p[0]) * (p[3] - p[1]) + (t[2] - t[0]) * (t[3] - t[1]) - inter
    iou = inter / union
    rho2 = ((p[0] + p[2]) / 2 - (t[0] + t[2]) / 2) ** 2 + (
        (p[1] + p[3]) / 2 - (t[1] + t[3]) / 2
    ) ** 2
    cw = max(p[2], t[2]) - min(p[0], t[0])
    ch = max(p[3], t[3]) - min(p[1], t[1])
    return iou, rho2, cw**2 + ch**2, cw * ch, union


def scalar_ciou(p, t):
    """CIoU (Zheng et al. 2020): IoU - rho^2 / c^2 - alpha v, alpha = v / ((1 - IoU) + v)."""
    iou, rho2, c2, _, _ = scalar_iou_terms(p, t)
    v = (
        4
        / math.pi**2
        * (math.atan((t[2] - t[0]) / (t[3] - t[1])) - math.atan((p[2] - p[0]) / (p[3] - p[1]))) ** 2
    )
    alpha = v / ((1 - iou) + v) if v > 0 else 0.0
    return iou - rho2 / c2 - alpha * v


def scalar_giou(p, t):
    iou, _, _, area_c, union = scalar_iou_terms(p, t)
    return iou - (area_c - union) / area_c


def as_tensors(pairs):
    pred = torch.tensor([p for p, _ in pairs], dtype=torch.float64)
    target = torch.tensor([t for _, t in pairs], dtype=torch.float64)
    return pred, target


def to_cxcywh(b):
    return torch.stack(
        [(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]],
        dim=1,
    )


def test_ciou_giou_iou_match_scalar_formulas():
    pred, target = as_tensors(BOX_PAIRS)
    ciou = bbox_overlaps(pred, target, iou_mode='ciou', bbox_format='xyxy')
    giou = bbox_overlaps(pred, target, iou_mode='giou', bbox_format='xyxy')
    iou = bbox_overlaps(pred, target, iou_mode='iou', bbox_format='xyxy')
    for i, (p, t) in enumerate(BOX_PAIRS):
        assert ciou[i].item() == pytest.approx(scalar_ciou(p, t), abs=1e-6)
        assert giou[i].item() == pytest.approx(scalar_giou(p, t), abs=1e-6)
        assert iou[i].item() == pytest.approx(scalar_iou_terms(p, t)[0], abs=1e-6)
    # identical boxes: CIoU = 1; disjoint: negative
    assert ciou[3].item() == pytest.approx(1.0, abs=1e-6)
    assert ciou[1].item() < 0


def test_overlaps_xywh_equals_xyxy_and_broadcasts():
    pred, target = as_tensors(BOX_PAIRS)
    a = bbox_overlaps(pred, target, iou_mode='ciou', bbox_format='xyxy')
    b = bbox_overlaps(to_cxcywh(pred), to_cxcywh(target), iou_mode='ciou', bbox_format='xywh')
    assert torch.allclose(a, b, atol=1e-9)
    # (1, N, 4) x (M, 1, 4) -> (M, N): column j of row i is pair (target i, pred j)
    grid = bbox_overlaps(pred[None], target[:, None], iou_mode='ciou', bbox_format='xyxy')
    assert grid.shape == (5, 5)
    assert torch.allclose(grid.diagonal(), a)
    with pytest.raises(ValueError, match='iou_mode'):
        bbox_overlaps(pred, target, iou_mode='diou')


def test_iou_loss_weighted_sum_and_zero_weight():
    pred, target = as_tensors(BOX_PAIRS)
    weight = torch.tensor([[0.5], [1.0], [2.0], [0.0], [0.25]], dtype=torch.float64)
    loss_fn = MODELS.build(
        dict(
            type='IoULoss',
            iou_mode='ciou',
            bbox_format='xyxy',
            reduction='sum',
            loss_weight=7.5,
            return_iou=False,
        )
    )
    expected = 7.5 * sum(
        w * (1 - scalar_ciou(p, t)) for w, (p, t) in zip(weight[:, 0].tolist(), BOX_PAIRS)
    )
    assert loss_fn(pred, target, weight=weight).item() == pytest.approx(expected, rel=1e-6)
    # mean reduction with return_iou: the overlaps come back too
    loss, iou = IoULoss(bbox_format='xyxy')(pred, target)
    assert loss.item() == pytest.approx(
        sum(1 - scalar_ciou(p, t) for p, t in BOX_PAIRS) / len(BOX_PAIRS), rel=1e-6
    )
    assert iou.shape == (5,)
    # no positive weight: a zero that still has a graph
    pred_g = pred.clone().requires_grad_(True)
    zero = loss_fn(pred_g, target, weight=torch.zeros(5, 1, dtype=torch.float64))
    assert zero.item() == 0.0 and zero.requires_grad


def test_dfl_is_interpolated_cross_entropy():
    logits = [[0.2, 1.5, -0.3, 0.9], [2.0, -1.0, 0.5, 0.0]]
    targets = [1.3, 2.0]
    weights = [1.0, 0.5]

    def ce(row, k):
        return -(row[k] - math.log(sum(math.exp(v) for v in row)))

    per = [
        ce(logits[0], 1) * 0.7 + ce(logits[0], 2) * 0.3,  # 1.3 = 0.7 * bin 1 + 0.3 * bin 2
        ce(logits[1], 2) * 1.0 + ce(logits[1], 3) * 0.0,
    ]
    pred = torch.tensor(logits, dtype=torch.float64)
    target = torch.tensor(targets, dtype=torch.float64)
    loss_fn = MODELS.build(
        dict(type='DistributionFocalLoss', reduction='mean', loss_weight=1.5 / 4)
    )
    assert loss_fn(pred, target).item() == pytest.approx(1.5 / 4 * sum(per) / 2, rel=1e-6)
    weighted = loss_fn(
        pred, target, weight=torch.tensor(weights, dtype=torch.float64), avg_factor=3.0
    )
    assert weighted.item() == pytest.approx(1.5 / 4 * (per[0] * 1.0 + per[1] * 0.5) / 3.0, rel=1e-6)
    none = DistributionFocalLoss(reduction='none')(pred, target)
    assert torch.allclose(none, torch.tensor(per, dtype=torch.float64))


def test_distance_point_bbox_coder_round_trip_and_clamp():
    coder = TASK_UTILS.build(dict(type='DistancePointBBoxCoder'))
    points = torch.tensor([[12.0, 20.0], [40.0, 8.0], [100.0, 60.0]])
    boxes = torch.tensor(
        [[4.0, 10.0, 30.0, 26.0], [33.0, 1.0, 47.0, 9.0], [70.0, 40.0, 120.0, 90.0]]
    )
    stride = torch.tensor([8.0, 8.0, 32.0])
    dist = coder.encode(points, boxes, max_dis=1000.0)
    assert torch.equal(
        dist, torch.tensor([[8.0, 10.0, 18.0, 6.0], [7.0, 7.0, 7.0, 1.0], [30.0, 20.0, 20.0, 30.0]])
    )
    decoded = coder.decode(points, dist / stride[:, None], stride)
    assert torch.allclose(decoded, boxes)
    # batched (B, N, ...) decode with shared points
    batched = coder.decode(points[None], (dist / stride[:, None])[None].repeat(2, 1, 1), stride)
    assert batched.shape == (2, 3, 4) and torch.allclose(batched[1], boxes)
    # DFL targets: clamped to [0, max_dis - eps]; a point outside its box gives 0
    clamped = coder.encode(points / 8, boxes / 8, max_dis=15, eps=0.01)
    assert clamped.max().item() == pytest.approx(3.75)  # 30 / 8 < 14.99
    far = coder.encode(
        torch.tensor([[0.0, 0.0]]), torch.tensor([[-40.0, -2.0, 3.0, 50.0]]), max_dis=15, eps=0.01
    )
    assert torch.allclose(far, torch.tensor([[14.99, 2.0, 3.0, 14.99]]))
    outside = coder.encode(
        torch.tensor([[0.0, 0.0]]), torch.tensor([[5.0, 5.0, 9.0, 9.0]]), max_dis=15, eps=0.01
    )
    assert torch.equal(outside[0, :2], torch.zeros(2))
    # clipping to an image (H, W)
    clipped = distance2bbox(
        torch.tensor([[5.0, 5.0]]), torch.tensor([[10.0, 1.0, 2.0, 30.0]]), max_shape=(20, 40)
    )
    assert torch.equal(clipped, torch.tensor([[0.0, 4.0, 7.0, 20.0]]))
    assert isinstance(coder, DistancePointBBoxCoder)
