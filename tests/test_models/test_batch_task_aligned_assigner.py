"""BatchTaskAlignedAssigner on hand-built cases with hand-computed alignment metrics."""

import math

import pytest
import torch

from ai4rs.models.losses import bbox_overlaps
from ai4rs.models.task_modules.assigners import batch_task_aligned_assigner as tal_module
from ai4rs.models.task_modules.assigners import select_candidates_in_gts
from ai4rs.registry import TASK_UTILS

STRIDE = 8
GRID = 4  # 4 x 4 priors at (4, 12, 20, 28) x (4, 12, 20, 28); index = row * 4 + col


def grid_priors():
    ys, xs = torch.meshgrid(torch.arange(GRID), torch.arange(GRID), indexing='ij')
    pts = torch.stack([xs.flatten(), ys.flatten()], -1).double() * STRIDE + STRIDE / 2
    return torch.cat([pts, torch.full((GRID * GRID, 2), float(STRIDE), dtype=torch.float64)], 1)


def build(**kwargs):
    cfg = dict(
        type='BatchTaskAlignedAssigner',
        num_classes=2,
        topk=10,
        alpha=0.5,
        beta=6.0,
        eps=1e-9,
        use_ciou=False,
    )
    cfg.update(kwargs)
    return TASK_UTILS.build(cfg)


def batch(gt_rows, pred_bboxes, pred_scores):
    """One image: gt_rows list of (label, x1, y1, x2, y2); padding rows are all zero."""
    gt = torch.tensor(gt_rows, dtype=torch.float64)[None]
    labels, boxes = gt[..., :1], gt[..., 1:]
    flag = (boxes.sum(-1, keepdim=True) > 0).double()
    return pred_bboxes[None], pred_scores[None], grid_priors(), labels, boxes, flag


def metric_case():
    """GT (0, 0, 32, 32) of class 1 over all 16 priors. Priors 5, 6, 9 predict (0, 0, 32, 32u)
    (IoU u with the GT) with scores s; the others IoU 0.3, score 0.1."""
    pred = torch.tensor([[0.0, 0.0, 32.0, 32.0 * 0.3]] * 16, dtype=torch.float64)
    scores = torch.zeros(16, 2, dtype=torch.float64)
    scores[:, 1] = 0.1
    cases = {5: (0.9, 0.5), 6: (0.2, 0.9), 9: (0.5, 0.8)}  # prior: (score, IoU)
    for p, (s, u) in cases.items():
        pred[p, 3] = 32.0 * u
        scores[p, 1] = s
    return pred, scores, cases


def test_topk_by_alignment_metric_and_normalised_scores():
    pred, scores, cases = metric_case()
    alpha, beta = 0.5, 6.0
    t = {p: s**alpha * u**beta for p, (s, u) in cases.items()}
    # prior 5 has the best score but the worst alignment: top-2 is {6, 9}
    assert sorted(t, key=t.get)[-2:] == [9, 6]
    res = build(topk=2)(*batch([[1, 0, 0, 32, 32]], pred, scores))
    assert res['fg_mask_pre_prior'][0].nonzero()[:, 0].tolist() == [6, 9]
    best_u = max(cases[6][1], cases[9][1])
    best_t = max(t[6], t[9])
    expected = torch.zeros(16, 2, dtype=torch.float64)
    expected[6, 1] = t[6] * best_u / (best_t + 1e-9)
    expected[9, 1] = t[9] * best_u / (best_t + 1e-9)
    assert torch.allclose(res['assigned_scores'][0], expected, atol=1e-6)
    assert expected[6, 1].item() == pytest.approx(0.9, abs=1e-6)
    assert res['assigned_labels'][0, [6, 9]].tolist() == [1, 1]
    assert torch.equal(
        res['assigned_bboxes'][0, 6], torch.tensor([0.0, 0.0, 32.0, 32.0], dtype=torch.float64)
    )


def test_alignment_metric_value():
    pred, scores, cases = metric_case()
    assigner = build()
    args = batch([[1, 0, 0, 32, 32]], pred, scores)
    metrics, overlaps = assigner.get_box_metrics(args[0], args[1], args[3], args[4], 1, 1)
    for p, (s, u) in cases.items():
        assert overlaps[0, 0, p].item() == pytest.approx(u, abs=1e-6)
        assert metrics[0, 0, p].item() == pytest.approx(math.sqrt(s) * u**6, rel=1e-5)
    assert metrics[0, 0, 0].item() == pytest.approx(math.sqrt(0.1) * 0.3**6, rel=1e-5)
    # use_ciou: the overlaps are the clamped CIoU of the predictions with the GT
    _, ciou = build(use_ciou=True).get_box_metrics(args[0], args[1], args[3], args[4], 1, 1)
    ref = bbox_overlaps(
        args[0][:, None], args[4][:, :, None], iou_mode='ciou', bbox_format='xyxy'
    ).clamp(0)
    assert torch.equal(ciou, ref)


def test_prior_inside_two_gts_goes_to_higher_iou():
    # GT A (0, 0, 24, 24) class 0 and GT B (8, 8, 32, 32) class 1 share priors 5 (12, 12),
    # 6 (20, 12), 9 (12, 20) and 10 (20, 20); prior 5 predicts a box close to A, 10 close to B
    pred = torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 16, dtype=torch.float64)
    pred[5] = torch.tensor([1.0, 1.0, 23.0, 22.0])
    pred[10] = torch.tensor([9.0, 10.0, 32.0, 31.0])
    scores = torch.full((16, 2), 0.6, dtype=torch.float64)
    gts = [[0, 0, 0, 24, 24], [1, 8, 8, 32, 32]]
    args = batch(gts, pred, scores)
    in_gts = select_candidates_in_gts(args[2][:, :2], args[4])
    assert in_gts[0, :, 5].tolist() == [1.0, 1.0] and in_gts[0, :, 10].tolist() == [1.0, 1.0]
    res = build(topk=4)(*args)
    fg = res['fg_mask_pre_prior'][0]
    assert fg[5] and fg[10]
    assert res['assigned_labels'][0, 5].item() == 0
    assert res['assigned_labels'][0, 10].item() == 1
    assert res['assigned_bboxes'][0, 5].tolist() == [0.0, 0.0, 24.0, 24.0]
    assert res['assigned_bboxes'][0, 10].tolist() == [8.0, 8.0, 32.0, 32.0]
    # one class column per positive
    assert ((res['assigned_scores'][0] > 0).sum(-1) <= 1).all()


def test_padded_gts_are_ignored():
    pred, scores, _ = metric_case()
    plain = build(topk=3)(*batch([[1, 0, 0, 32, 32]], pred, scores))
    padded = build(topk=3)(
        *batch([[0, 0, 0, 0, 0], [1, 0, 0, 32, 32], [0, 0, 0, 0, 0]], pred, scores)
    )
    fg = plain['fg_mask_pre_prior']
    assert fg.sum() == 3 and torch.equal(fg, padded['fg_mask_pre_prior'])
    assert torch.equal(plain['assigned_scores'], padded['assigned_scores'])
    # negatives carry the image's first GT row (here a padding row), as upstream; positives
    # carry the real GT
    for key in ('assigned_labels', 'assigned_bboxes'):
        assert torch.equal(plain[key][fg], padded[key][fg]), key


def test_image_without_gt_and_batch_without_gt():
    pred, scores, _ = metric_case()
    one = batch([[1, 0, 0, 32, 32]], pred, scores)
    # image 1 has only padding
    two = (
        pred[None].repeat(2, 1, 1),
        scores[None].repeat(2, 1, 1),
        grid_priors(),
        torch.tensor([[[1.0]], [[0.0]]], dtype=torch.float64),
        torch.tensor([[[0.0, 0.0, 32.0, 32.0]], [[0.0, 0.0, 0.0, 0.0]]], dtype=torch.float64),
        torch.tensor([[[1.0]], [[0.0]]], dtype=torch.float64),
    )
    res_one, res_two = build(topk=3)(*one), build(topk=3)(*two)
    assert not res_two['fg_mask_pre_prior'][1].any()
    assert torch.equal(res_two['assigned_scores'][1], torch.zeros(16, 2, dtype=torch.float64))
    for key in res_one:
        assert torch.equal(res_one[key][0], res_two[key][0]), key
    # no ground truth in the whole batch
    empty = build()(
        pred[None],
        scores[None],
        grid_priors(),
        torch.zeros(1, 0, 1),
        torch.zeros(1, 0, 4),
        torch.zeros(1, 0, 1),
    )
    assert torch.equal(empty['assigned_labels'], torch.full((1, 16), 2))
    assert not empty['fg_mask_pre_prior'].any()
    assert empty['assigned_scores'].shape == (1, 16, 2) and not empty['assigned_scores'].any()
    assert empty['assigned_bboxes'].shape == (1, 16, 4)


def test_chunked_batches_equal_one_pass(monkeypatch):
    g = torch.Generator().manual_seed(3)
    b, gt_num, c = 3, 5, 4
    priors = grid_priors().float()
    ctr = priors[None, :, :2].expand(b, -1, -1)
    d = torch.rand(b, 16, 4, generator=g) * 12
    pred = torch.cat([ctr - d[..., :2], ctr + d[..., 2:]], -1)
    scores = torch.rand(b, 16, c, generator=g)
    xy = torch.rand(b, gt_num, 2, generator=g) * 20
    boxes = torch.cat([xy, xy + 4 + torch.rand(b, gt_num, 2, generator=g) * 16], -1)
    labels = torch.randint(0, c, (b, gt_num, 1), generator=g).float()
    flag = torch.ones(b, gt_num, 1)
    flag[1, 3:] = 0
    boxes, labels = boxes * flag, labels * flag
    assigner = build(num_classes=c, use_ciou=True)
    whole = assigner(pred, scores, priors, labels, boxes, flag)
    assert whole['fg_mask_pre_prior'].any()
    monkeypatch.setattr(tal_module, 'MAX_PAIRS_PER_STEP', 1)
    chunked = assigner(pred, scores, priors, labels, boxes, flag)
    for key in whole:
        assert torch.equal(whole[key], chunked[key]), key
