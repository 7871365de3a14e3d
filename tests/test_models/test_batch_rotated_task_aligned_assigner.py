"""BatchRotatedTaskAlignedAssigner: a hand-built rotated case, parity with the horizontal
assigner on axis-aligned boxes, sparse overlaps against a dense rotated IoU, empty batches."""

import math

import pytest
import torch

from ai4rs.models.task_modules.assigners import (
    BatchRotatedTaskAlignedAssigner,
    select_candidates_in_rotated_gts,
)
from ai4rs.models.task_modules.assigners import (
    batch_rotated_task_aligned_assigner as rtal_module,
)
from ai4rs.ops import box_iou_rotated
from ai4rs.registry import TASK_UTILS

F64 = torch.float64


def build(kind='BatchRotatedTaskAlignedAssigner', **kwargs):
    cfg = dict(type=kind, num_classes=2, topk=13, alpha=1.0, beta=6.0, eps=1e-9)
    cfg.update(kwargs)
    return TASK_UTILS.build(cfg)


def grid_points(n, stride):
    """(n * n, 2) points (stride/2 + stride * col, stride/2 + stride * row); index row * n + col."""
    ys, xs = torch.meshgrid(torch.arange(n), torch.arange(n), indexing='ij')
    return torch.stack([xs.flatten(), ys.flatten()], -1).to(F64) * stride + stride / 2


def xyxy_to_rbox(b):
    return torch.cat([(b[..., :2] + b[..., 2:]) / 2, b[..., 2:] - b[..., :2], b[..., :1] * 0], -1)


def rbox_to_xyxy(r):
    return torch.cat([r[..., :2] - r[..., 2:4] / 2, r[..., :2] + r[..., 2:4] / 2], -1)


# ---------------------------------------------------------------- (a) hand-built rotated case
def prior_index(x, y):
    return (y - 4) // 8 * 8 + (x - 4) // 8


def test_hand_built_45_degree_gt():
    """GT (32, 32, 40, 16, pi/4) of class 1 over an 8 x 8 grid of stride 8 (points 4 .. 60).

    A prior at offset (dx, dy) from the centre is inside when |dx + dy| / sqrt2 < 20 and
    |dy - dx| / sqrt2 < 8, i.e. (offsets are multiples of 8 plus 4, 4) dy - dx in {0, +-8} and
    |dx + dy| <= 24: ten priors. Predictions: the GT itself at three of them (IoU 1) and at an
    outside prior; the GT shifted by s along its own long axis at the seven others, IoU
    (40 - s) / (40 + s). Scores 0.5, except 0.1 at the s = 4 prior. topk 5: alignment
    0.5 (three exact), 0.5 (38/42)^6 = 0.274 (s = 2), 0.5 (34/46)^6 = 0.082 (s = 6); then
    s = 8 (0.044) and s = 4 (0.1 (36/44)^6 = 0.030) are left out.
    """
    gt = torch.tensor([[[32.0, 32.0, 40.0, 16.0, math.pi / 4]]], dtype=F64)
    inside = [(20, 20), (28, 28), (36, 36), (44, 44)]
    inside += [(20, 28), (28, 36), (36, 44), (28, 20), (36, 28), (44, 36)]
    points = grid_points(8, 8)
    is_in = select_candidates_in_rotated_gts(points, gt)[0, 0]
    assert sorted(is_in.nonzero()[:, 0].tolist()) == sorted(prior_index(*p) for p in inside)

    exact = [(28, 28), (36, 36), (20, 28)]
    shifts = {(44, 44): 2, (20, 20): 4, (28, 36): 6, (36, 44): 8, (28, 20): 10}
    shifts.update({(36, 28): 12, (44, 36): 14})
    pred = torch.tensor([[100.0, 100.0, 4.0, 4.0, 0.0]], dtype=F64).repeat(64, 1)
    scores = torch.full((64, 2), 0.5, dtype=F64)
    for p in [*exact, (4, 4)]:  # (4, 4) is outside the GT: never a candidate
        pred[prior_index(*p)] = gt[0, 0]
    for p, s in shifts.items():
        pred[prior_index(*p)] = gt[0, 0] + torch.tensor(
            [s / math.sqrt(2), s / math.sqrt(2), 0, 0, 0], dtype=F64
        )
    scores[prior_index(20, 20), 1] = 0.1
    out = build(topk=5)(
        pred[None], scores[None], points, gt.new_ones(1, 1, 1), gt, gt.new_ones(1, 1, 1)
    )

    expected_pos = {
        prior_index(28, 28): 1.0,
        prior_index(36, 36): 1.0,
        prior_index(20, 28): 1.0,
        prior_index(44, 44): (38 / 42) ** 6,  # t / max t * max IoU = 0.5 u^6 / 0.5 * 1
        prior_index(28, 36): (34 / 46) ** 6,
    }
    fg = out['fg_mask_pre_prior'][0]
    assert sorted(fg.nonzero()[:, 0].tolist()) == sorted(expected_pos)
    assert (out['assigned_labels'][0] == 1).all()  # the only GT's label, also for negatives
    torch.testing.assert_close(out['assigned_bboxes'][0], gt[0].expand(64, 5))
    target = torch.zeros(64, 2, dtype=F64)
    for p, v in expected_pos.items():
        target[p, 1] = v
    torch.testing.assert_close(out['assigned_scores'][0], target, atol=1e-7, rtol=0)


def test_rotated_gt_candidates_follow_the_rotation_direction():
    """The mirror GT (angle -pi/4) covers the other diagonal: (20, 44) in, (20, 28) out."""
    points = grid_points(8, 8)
    gt = torch.tensor([[[32.0, 32.0, 40.0, 16.0, -math.pi / 4]]], dtype=F64)
    is_in = select_candidates_in_rotated_gts(points, gt)[0, 0]
    assert is_in[prior_index(20, 44)] == 1 and is_in[prior_index(20, 28)] == 0
    assert int(is_in.sum()) == 10


# ------------------------------------------------- (b) parity with the horizontal assigner
def axis_aligned_batch(seed=0):
    """B = 2 images of 64 x 64, priors of stride 4 at 2 + 4k; image 0 has 4 GTs, image 1 has
    2 GTs and 2 paddings. Each GT lies in its own 32 x 32 quadrant (no prior is inside two);
    the edges are integers, some on prior coordinates (such priors are outside). Each prior
    predicts a box centred within 0.5 px of itself, so every inside pair has IoU > 0."""
    g = torch.Generator().manual_seed(seed)
    points = grid_points(16, 4)
    gts = torch.zeros(2, 4, 4, dtype=F64)
    for b, n in ((0, 4), (1, 2)):
        for i in range(n):
            x0, y0 = 32 * (i % 2), 32 * (i // 2)
            x1, y1 = (torch.randint(0, 8, (2,), generator=g) + torch.tensor([x0, y0])).tolist()
            w, h = torch.randint(10, 24, (2,), generator=g).tolist()
            gts[b, i] = torch.tensor([x1, y1, x1 + w, y1 + h], dtype=F64)
    gts[0, 0, 0] = 2.0  # left edge on the prior column x = 2
    labels = torch.randint(0, 2, (2, 4, 1), generator=g).to(F64)
    flag = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=F64)[..., None]
    labels = labels * flag
    ctr = points[None] + torch.rand(2, 256, 2, generator=g, dtype=F64) - 0.5
    wh = 4 + torch.rand(2, 256, 2, generator=g, dtype=F64) * 26
    pred_xyxy = torch.cat([ctr - wh / 2, ctr + wh / 2], -1)
    scores = 0.05 + 0.9 * torch.rand(2, 256, 2, generator=g, dtype=F64)
    return points, gts, labels, flag, pred_xyxy, scores


def test_axis_aligned_boxes_match_the_horizontal_assigner():
    points, gts, labels, flag, pred_xyxy, scores = axis_aligned_batch()
    priors = torch.cat([points, torch.full_like(points, 4.0)], -1)
    horizontal = build('BatchTaskAlignedAssigner')(pred_xyxy, scores, priors, labels, gts, flag)
    rotated = build()(xyxy_to_rbox(pred_xyxy), scores, priors, labels, xyxy_to_rbox(gts), flag)
    # the case is not trivial: an edge on priors, a GT with more inside priors than topk
    assert (points[:, 0] == 2.0).any()
    in_counts = select_candidates_in_rotated_gts(points, xyxy_to_rbox(gts)).sum(-1)
    assert in_counts.max() > 13
    assert int(horizontal['fg_mask_pre_prior'].sum()) > 40
    assert torch.equal(rotated['fg_mask_pre_prior'], horizontal['fg_mask_pre_prior'])
    assert torch.equal(rotated['assigned_labels'], horizontal['assigned_labels'])
    torch.testing.assert_close(
        rotated['assigned_scores'], horizontal['assigned_scores'], atol=1e-5, rtol=0
    )
    fg = horizontal['fg_mask_pre_prior']
    torch.testing.assert_close(
        rbox_to_xyxy(rotated['assigned_bboxes'])[fg], horizontal['assigned_bboxes'][fg]
    )
    assert rotated['assigned_bboxes'].shape == (2, 256, 5)
    assert (rotated['assigned_bboxes'][..., 4] == 0).all()


def test_prior_inside_two_gts_goes_to_the_best_containing_gt():
    """The documented deviation: GTs A, B contain prior 0, C does not (the point is on its
    edge). Its prediction is C itself: IoU 96/416 with A, 160/352 with B, 1 with C. The dense
    horizontal assigner gives the prior to C; the rotated one to B."""
    points = torch.tensor([[22.0, 20.0], [100.0, 100.0]], dtype=F64)
    gts = torch.tensor([[[20.0, 20, 16, 16, 0], [24, 20, 16, 16, 0], [30, 20, 16, 16, 0]]])
    gts = gts.to(F64)
    pred = torch.tensor([[[30.0, 20, 16, 16, 0], [100, 100, 4, 4, 0]]], dtype=F64)
    scores = torch.full((1, 2, 2), 0.5, dtype=F64)
    labels = torch.tensor([[[0.0], [1.0], [0.0]]], dtype=F64)
    flag = torch.ones(1, 3, 1, dtype=F64)
    rotated = build()(pred, scores, points, labels, gts, flag)
    horizontal = build('BatchTaskAlignedAssigner')(
        rbox_to_xyxy(pred), scores, points, labels, rbox_to_xyxy(gts), flag
    )
    assert rotated['fg_mask_pre_prior'].tolist() == [[True, False]]
    assert rotated['assigned_labels'][0, 0] == 1
    torch.testing.assert_close(rotated['assigned_bboxes'][0, 0], gts[0, 1])
    torch.testing.assert_close(horizontal['assigned_bboxes'][0, 0], rbox_to_xyxy(gts[0, 2]))


# ------------------------------------------------------------- (c) sparse vs dense overlaps
def random_rotated_batch(seed=1, num_priors=200):
    g = torch.Generator().manual_seed(seed)
    points = torch.rand(num_priors, 2, generator=g, dtype=F64) * 100
    u = torch.rand(2, 5, 5, generator=g, dtype=F64)
    gts = torch.cat([u[..., :2] * 100, 10 + u[..., 2:4] * 40, (u[..., 4:] - 0.5) * math.pi], -1)
    gts[1, 3:] = 0  # padding
    flag = torch.tensor([[1] * 5, [1, 1, 1, 0, 0]], dtype=F64)[..., None]
    v = torch.rand(2, num_priors, 5, generator=g, dtype=F64)
    pred = torch.cat(
        [points[None] + (v[..., :2] - 0.5) * 8, 5 + v[..., 2:4] * 30, (v[..., 4:] - 0.5) * 3], -1
    )
    scores = torch.rand(2, num_priors, 2, generator=g, dtype=F64)
    labels = torch.randint(0, 2, (2, 5, 1), generator=g).to(F64) * flag
    return points, gts, labels, flag, pred, scores


def test_sparse_overlaps_equal_dense_rotated_iou_on_inside_pairs():
    points, gts, labels, flag, pred, scores = random_rotated_batch()
    assigner = build()
    is_in = (select_candidates_in_rotated_gts(points, gts) * flag) > 0
    assert is_in.sum() > 50 and (~is_in).sum() > 50
    metrics, overlaps = assigner.get_box_metrics(pred, scores, labels, gts, 2, 5, is_in)
    dense = torch.stack([box_iou_rotated(gts[b], pred[b]) for b in range(2)])
    torch.testing.assert_close(overlaps[is_in], dense[is_in], atol=1e-12, rtol=0)
    assert (overlaps[~is_in] == 0).all() and (overlaps[is_in] > 0).any()
    label_scores = scores.permute(0, 2, 1).gather(1, labels.long().expand(-1, -1, 200))
    torch.testing.assert_close(metrics, label_scores * overlaps**6)
    # without a mask: every pair of a GT with an area (the padding has none)
    _, all_pairs = assigner.get_box_metrics(pred, scores, labels, gts, 2, 5)
    torch.testing.assert_close(all_pairs[0], dense[0])
    torch.testing.assert_close(all_pairs[1, :3], dense[1, :3])
    assert (all_pairs[1, 3:] == 0).all()


def test_iou_op_sees_only_inside_pairs_of_real_gts(monkeypatch):
    points, gts, labels, flag, pred, scores = random_rotated_batch(seed=2)
    gts[1, 3] = torch.tensor([50.0, 50.0, 0.0, 0.0, 0.0], dtype=F64)  # zero-size padding
    gts[1, 4] = torch.tensor([50.0, 50.0, 60.0, 60.0, 0.3], dtype=F64)  # flag 0, not zero
    expected_pairs = int((select_candidates_in_rotated_gts(points, gts) * flag).sum())
    seen = []

    def checked_iou(b1, b2, aligned=False):
        assert aligned and (b1[:, 2:4] > 0).all() and (b2[:, 2:4] > 0).all()
        seen.append(b1.size(0))
        return box_iou_rotated(b1, b2, aligned=True)

    monkeypatch.setattr(rtal_module, 'box_iou_rotated', checked_iou)
    out = build()(pred, scores, points, labels, gts, flag)
    assert sum(seen) == expected_pairs > 0
    assert select_candidates_in_rotated_gts(points, gts)[1, 4].sum() > 10
    assert out['fg_mask_pre_prior'].any()


# --------------------------------------------------------------------- (d) empty batches
def test_no_gt_in_the_batch(monkeypatch):
    def no_iou(*args, **kwargs):
        raise AssertionError('the IoU op must not run without ground truth')

    monkeypatch.setattr(rtal_module, 'box_iou_rotated', no_iou)
    points, _, _, _, pred, scores = random_rotated_batch()
    assigner = build()
    empty = assigner(
        pred, scores, points, torch.zeros(2, 0, 1), torch.zeros(2, 0, 5), torch.zeros(2, 0, 1)
    )
    assert (empty['assigned_labels'] == 2).all() and empty['assigned_labels'].shape == (2, 200)
    assert empty['assigned_bboxes'].shape == (2, 200, 5) and not empty['assigned_bboxes'].any()
    assert empty['assigned_scores'].shape == (2, 200, 2) and not empty['assigned_scores'].any()
    assert not empty['fg_mask_pre_prior'].any()
    # only padding: no positive, no IoU evaluated
    padded = assigner(
        pred, scores, points, torch.zeros(2, 3, 1), torch.zeros(2, 3, 5), torch.zeros(2, 3, 1)
    )
    assert not padded['fg_mask_pre_prior'].any() and not padded['assigned_scores'].any()
    assert padded['assigned_bboxes'].shape == (2, 200, 5)


def test_bad_arguments():
    with pytest.raises(ValueError, match='use_ciou=True is not supported'):
        build(use_ciou=True)
    assert isinstance(build(), BatchRotatedTaskAlignedAssigner)
    points, gts, labels, flag, pred, scores = random_rotated_batch()
    with pytest.raises(ValueError, match=r'pred_bboxes must be \(B, P, 5\).*\(2, 200, 4\)'):
        build()(pred[..., :4], scores, points, labels, gts, flag)
    with pytest.raises(ValueError, match=r'gt_bboxes must be \(B, G, 5\).*\(2, 5, 4\)'):
        build()(pred, scores, points, labels, gts[..., :4], flag)


def test_prior_inside_two_gts_with_zero_ious_goes_to_the_first_containing_gt():
    """GT 0 (the point on its edge) does not contain prior 0, GTs 1 and 2 do; the prediction
    overlaps none (all IoUs 0, yet the prior is a top-k candidate of both). The rotated
    assigner gives it to GT 1, not to GT 0 as an argmax over all GTs would."""
    points = torch.tensor([[22.0, 20.0], [100.0, 100.0]], dtype=F64)
    gts = torch.tensor([[[30.0, 20, 16, 16, 0], [20, 20, 16, 16, 0], [24, 20, 16, 16, 0]]])
    gts = gts.to(F64)
    pred = torch.tensor([[[200.0, 200, 4, 4, 0], [100, 100, 4, 4, 0]]], dtype=F64)
    labels = torch.tensor([[[0.0], [1.0], [0.0]]], dtype=F64)
    out = build()(
        pred, torch.full((1, 2, 2), 0.5, dtype=F64), points, labels, gts, torch.ones(1, 3, 1)
    )
    assert out['fg_mask_pre_prior'].tolist() == [[True, False]]
    torch.testing.assert_close(out['assigned_bboxes'][0, 0], gts[0, 1])
    assert out['assigned_labels'][0, 0] == 1 and not out['assigned_scores'].any()
