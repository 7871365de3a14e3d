"""YOLO-World head: upstream keys/shapes, init, contrastive logits, losses, rescaling."""

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import InstanceData

from ai4rs.models.dense_heads import BNContrastiveHead, ContrastiveHead, YOLOWorldHead
from ai4rs.models.utils import gt_instances_preprocess
from ai4rs.registry import MODELS
from ai4rs.structures import DetDataSample
from ai4rs.structures.bbox import HorizontalBoxes

REFERENCE = Path(__file__).parents[1] / 'data' / 'yolo_world_v2_state_dict_keys.json'
HEAD_PREFIX = 'bbox_head.head_module.'
# size: (widen_factor, last_stage_out_channels), upstream v2 configs
V2_SIZES = {'s': (0.5, 1024), 'm': (0.75, 768), 'l': (1.0, 512), 'x': (1.25, 512)}
TEST_CFG = dict(
    multi_label=True,
    nms_pre=30000,
    score_thr=0.001,
    nms=dict(type='nms', iou_threshold=0.7),
    max_per_img=300,
)


def head_module_cfg(widen: float, last: int, **kwargs) -> dict:
    cfg = dict(
        type='YOLOWorldHeadModule',
        use_bn_head=True,
        embed_dims=512,
        num_classes=80,
        in_channels=[256, 512, last],
        widen_factor=widen,
        reg_max=16,
        norm_cfg=dict(type='BN', momentum=0.03, eps=0.001),
        act_cfg=dict(type='SiLU', inplace=True),
        featmap_strides=[8, 16, 32],
    )
    cfg.update(kwargs)
    return cfg


def tiny_head(num_classes: int = 3, embed: int = 16, **kwargs) -> YOLOWorldHead:
    """v2 head on (8, 16, 32)-channel levels (widen 0.25 of (32, 64, 128))."""
    head = MODELS.build(
        dict(
            type='YOLOWorldHead',
            head_module=head_module_cfg(
                0.25, 128, embed_dims=embed, num_classes=num_classes, in_channels=[32, 64, 128]
            ),
            train_cfg=dict(
                assigner=dict(
                    type='BatchTaskAlignedAssigner',
                    num_classes=num_classes,
                    use_ciou=True,
                    topk=10,
                    alpha=0.5,
                    beta=6.0,
                    eps=1e-9,
                )
            ),
            test_cfg=TEST_CFG,
            **kwargs,
        )
    )
    head.init_weights()
    return head


def tiny_inputs(seed: int = 0, batch: int = 2, size: int = 64, k: int = 3, embed: int = 16):
    g = torch.Generator().manual_seed(seed)
    feats = [
        torch.randn(batch, c, size // s, size // s, generator=g)
        for c, s in zip((8, 16, 32), (8, 16, 32))
    ]
    return feats, torch.randn(batch, k, embed, generator=g)


@pytest.mark.parametrize('size', sorted(V2_SIZES))
def test_head_module_keys_and_shapes_equal_upstream(size):
    reference = json.loads(REFERENCE.read_text())
    name = f'yolo_world_v2_{size}_vlpan_bn_2e-4_80e_8gpus_mask-refine_finetune_coco'
    expected = [(k, v) for k, v in reference[name].items() if k.startswith(HEAD_PREFIX)]
    widen, last = V2_SIZES[size]
    with torch.device('meta'):
        module = MODELS.build(head_module_cfg(widen, last))
    got = [(HEAD_PREFIX + k, list(v.shape)) for k, v in module.state_dict().items()]
    assert got == expected
    # the DFL projection is a non-persistent buffer, as upstream
    assert 'proj' not in module.state_dict() and module.proj.shape == (16,)


def test_init_weights_values():
    module = MODELS.build(head_module_cfg(0.25, 128, in_channels=[32, 64, 128], embed_dims=16))
    module.init_weights()
    for stride, reg, cls, contrast in zip(
        (8, 16, 32), module.reg_preds, module.cls_preds, module.cls_contrasts
    ):
        assert torch.all(reg[-1].bias == 1.0)
        assert torch.all(cls[-1].bias == 0.0)
        assert contrast.bias.item() == pytest.approx(math.log(5 / 80 / (640 / stride) ** 2))
        assert contrast.logit_scale.item() == -1.0
        assert torch.all(contrast.norm.weight == 1) and torch.all(contrast.norm.bias == 0)
        assert torch.all(cls[0].bn.weight == 1) and torch.all(cls[0].bn.bias == 0)
    assert isinstance(module.cls_contrasts[0], BNContrastiveHead)
    v1 = MODELS.build(
        head_module_cfg(0.25, 128, in_channels=[32, 64, 128], embed_dims=16, use_bn_head=False)
    )
    assert isinstance(v1.cls_contrasts[0], ContrastiveHead)
    assert v1.cls_contrasts[0].logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    assert sorted(v1.cls_contrasts[0].state_dict()) == ['bias', 'logit_scale']


def test_contrastive_logits_match_hand_formula():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 6, 3, 4, generator=g)
    w = torch.randn(2, 5, 6, generator=g)
    bn = BNContrastiveHead(6, dict(type='BN', momentum=0.03, eps=0.001)).eval()
    with torch.no_grad():
        bn.bias.fill_(0.25)
    out = bn(x, w)
    # eval BN with fresh statistics: x / sqrt(1 + eps); text L2-normalised; scale e^-1
    b, k, i, j = 1, 3, 2, 1
    xn = x[b, :, i, j] / math.sqrt(1 + 0.001)
    wn = w[b, k] / w[b, k].norm()
    assert out.shape == (2, 5, 3, 4)
    assert out[b, k, i, j].item() == pytest.approx((xn @ wn).item() * math.exp(-1) + 0.25, rel=1e-5)
    v1 = ContrastiveHead(6)
    ref = (x[b, :, i, j] / x[b, :, i, j].norm()) @ wn / 0.07
    assert v1(x, w)[b, k, i, j].item() == pytest.approx(ref.item(), rel=1e-5)
    # the matmul path (for exporters) equals einsum
    assert torch.allclose(ContrastiveHead(6, use_einsum=False)(x, w), v1(x, w), atol=1e-6)


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_region_text_similarity_of_a_channels_last_map(dtype):
    """A channels-last map takes the copy-free matmul with either ``use_einsum``: the float64
    dot products of every cell with every text (bfloat16: within its rounding)."""
    from ai4rs.models.dense_heads.yolo_world_head import region_text_similarity

    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 16, 5, 7, generator=g)
    w = torch.randn(2, 4, 16, generator=g)
    want = torch.einsum('bchw,bkc->bkhw', x.double(), w.double())
    cl = x.to(dtype).contiguous(memory_format=torch.channels_last)
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=0.15, rtol=0.02)
    for use_einsum in (True, False):
        got = region_text_similarity(cl, w.to(dtype), use_einsum)
        assert got.shape == (2, 4, 5, 7) and got.dtype == dtype
        torch.testing.assert_close(got.double(), want, **tol)
    # a contiguous map: einsum as before, the same values
    torch.testing.assert_close(
        region_text_similarity(x, w, True).double(), want, atol=1e-5, rtol=1e-5
    )


def test_forward_shapes_and_text_masks():
    head = tiny_head()
    feats, txt = tiny_inputs()
    head.train()
    cls, reg, dist = head(feats, txt)
    assert [tuple(c.shape) for c in cls] == [(2, 3, 8, 8), (2, 3, 4, 4), (2, 3, 2, 2)]
    assert [tuple(r.shape) for r in reg] == [(2, 4, 8, 8), (2, 4, 4, 4), (2, 4, 2, 2)]
    assert tuple(dist[0].shape) == (2, 64, 4, 16)
    # expected distance = softmax-weighted bin index
    expected = (dist[1].softmax(-1) * torch.arange(16.0)).sum(-1)  # (B, HW, 4)
    assert torch.allclose(reg[1].flatten(2).transpose(1, 2), expected, atol=1e-5)
    head.eval()
    masks = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    with torch.no_grad():
        cls_m, _ = head(feats, txt, masks)
        cls_u, _ = head(feats, txt)
    assert torch.all(cls_m[0][0, 2] == -10e6)
    assert torch.equal(cls_m[0][0, :2], cls_u[0][0, :2]) and torch.equal(cls_m[0][1], cls_u[0][1])


def data_samples(gt: torch.Tensor, batch: int = 2) -> list:
    samples = []
    for i in range(batch):
        rows = gt[gt[:, 0] == i]
        sample = DetDataSample()
        sample.gt_instances = InstanceData(
            bboxes=HorizontalBoxes(rows[:, 2:]), labels=rows[:, 1].long()
        )
        sample.set_metainfo(dict(img_shape=(64, 64), ori_shape=(64, 64), scale_factor=(1.0, 1.0)))
        samples.append(sample)
    return samples


def test_gt_instances_preprocess_both_forms():
    gt = torch.tensor([[1, 2, 5, 5, 9, 9], [0, 1, 1, 2, 3, 4], [1, 0, 6, 6, 8, 8.0]])
    padded = gt_instances_preprocess(gt, 3)
    expected = torch.zeros(3, 2, 5)
    expected[0, 0] = torch.tensor([1, 1, 2, 3, 4])
    expected[1, 0] = torch.tensor([2, 5, 5, 9, 9])
    expected[1, 1] = torch.tensor([0, 6, 6, 8, 8])
    assert torch.equal(padded, expected)
    instances = [sample.gt_instances for sample in data_samples(gt, 3)]
    assert torch.equal(gt_instances_preprocess(instances, 3), expected)
    assert gt_instances_preprocess(torch.zeros(0, 6), 2).shape == (2, 0, 5)
    with pytest.raises(ValueError, match='image indices'):
        gt_instances_preprocess(torch.tensor([[3, 0, 1, 1, 2, 2.0]]), 2)
    with pytest.raises(ValueError, match='non-finite'):
        gt_instances_preprocess(torch.tensor([[0, 0, 1, float('nan'), 2, 2.0]]), 1)


def test_loss_finite_positive_both_gt_forms_and_zero_gt():
    torch.manual_seed(0)
    head = tiny_head().train()
    feats, txt = tiny_inputs()
    gt = torch.tensor([[0, 1, 10, 10, 30, 40], [0, 2, 5, 5, 60, 60], [1, 0, 20, 20, 40, 40.0]])
    fast = head.loss(feats, txt, None, dict(bboxes_labels=gt, img_metas=[{}, {}]))
    samples = head.loss(feats, txt, None, data_samples(gt))
    for key in ('loss_cls', 'loss_bbox', 'loss_dfl'):
        assert torch.isfinite(fast[key]) and fast[key].item() > 0, key
        assert torch.equal(fast[key], samples[key]), key
    sum(fast.values()).backward()
    grad = head.head_module.reg_preds[0][-1].weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    # world_size multiplies every loss (with num_imgs), as upstream
    doubled = tiny_head(world_size=2)
    doubled.load_state_dict(head.state_dict())
    out2 = doubled.train().loss(feats, txt, None, dict(bboxes_labels=gt, img_metas=[{}, {}]))
    for key in fast:
        assert torch.allclose(out2[key], 2 * fast[key].detach()), key
    # no ground truth at all: only the classification loss (everything is background)
    empty = head.loss(feats, txt, None, dict(bboxes_labels=torch.zeros(0, 6), img_metas=[{}, {}]))
    assert all(torch.isfinite(v) for v in empty.values())
    assert empty['loss_cls'].item() > 0
    assert empty['loss_bbox'].item() == 0 and empty['loss_dfl'].item() == 0
    sum(empty.values()).backward()


# ----------------------------------------------------------- hand-computed loss
# Priors of a 64 x 64 input, levels in order, cells row-major: (level offset, width, stride)
LEVELS = ((0, 8, 8), (64, 4, 16), (80, 2, 32))
NUM_PRIORS = 84


def prior_index(level: int, row: int, col: int) -> tuple[int, float, float, int]:
    """Flat index, centre (x, y) and stride of a cell (offset 0.5, as MlvlPointGenerator)."""
    offset, width, stride = LEVELS[level]
    return offset + row * width + col, (col + 0.5) * stride, (row + 0.5) * stride, stride


class FixedAssignment(torch.nn.Module):
    """An assigner that returns a given assignment and records what it was called with."""

    def __init__(self, num_classes: int, assigned_bboxes, assigned_scores, fg_mask) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.result = dict(
            assigned_labels=assigned_scores.argmax(-1),
            assigned_bboxes=assigned_bboxes,
            assigned_scores=assigned_scores,
            fg_mask_pre_prior=fg_mask,
        )
        self.calls = []

    def forward(self, pred_bboxes, pred_scores, priors, gt_labels, gt_bboxes, pad_flag):
        self.calls.append(dict(pred_bboxes=pred_bboxes, pred_scores=pred_scores, priors=priors))
        return self.result


def reference_ciou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """CIoU of (n, 4) x1y1x2y2 boxes, written from the paper's formula (no eps):
    IoU - rho^2 / c^2 - alpha v, v = 4 / pi^2 (atan(w_b / h_b) - atan(w_a / h_a))^2,
    alpha = v / (1 - IoU + v)."""
    wa, ha = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
    wb, hb = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    iw = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
    ih = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0)
    inter = iw * ih
    iou = inter / (wa * ha + wb * hb - inter)
    cw = torch.maximum(a[:, 2], b[:, 2]) - torch.minimum(a[:, 0], b[:, 0])
    ch = torch.maximum(a[:, 3], b[:, 3]) - torch.minimum(a[:, 1], b[:, 1])
    rho2 = ((a[:, 0] + a[:, 2] - b[:, 0] - b[:, 2]) / 2) ** 2 + (
        (a[:, 1] + a[:, 3] - b[:, 1] - b[:, 3]) / 2
    ) ** 2
    v = 4 / math.pi**2 * (torch.atan(wb / hb) - torch.atan(wa / ha)) ** 2
    return iou - rho2 / (cw**2 + ch**2) - v**2 / (1 - iou + v)


# positives: (image, level, row, col, target box x1 y1 x2 y2 in input pixels, soft scores)
# the second target reaches 17 strides left of its prior (DFL target clamped to 14.99), the
# third lies partly above its prior (top distance clamped to 0)
POSITIVES = (
    (0, 0, 3, 4, (20.0, 14.0, 50.0, 44.0), (0.0, 0.6, 0.0)),
    (0, 1, 1, 2, (-232.0, 10.0, 60.0, 30.0), (0.7, 0.0, 0.0)),
    (1, 0, 5, 1, (2.0, 48.0, 30.0, 60.0), (0.0, 0.0, 0.9)),
)


@pytest.mark.parametrize('score_scale', [1.0, 0.1], ids=['sum_2.2', 'sum_0.22_clamped_to_1'])
def test_loss_equals_hand_computed_case(score_scale):
    """``loss_by_feat`` on fixed outputs and a fixed assignment equals the losses computed
    here with plain tensor math: with ``S = max(sum of assigned scores, 1)`` and ``w_i`` the
    score sum of positive ``i``, ``loss_cls = 0.5 * sum BCE(logit, score) / S``,
    ``loss_bbox = 7.5 * sum w_i (1 - CIoU_i) / S`` (boxes in stride units),
    ``loss_dfl = 1.5 / 4 * sum_{i, side} w_i DFL_{i, side} / S`` (targets clamped to
    ``[0, 14.99]``), each times ``num_imgs * world_size`` = 2. ``score_scale`` 0.1 makes the
    scores sum to 0.22, so the normaliser is the clamp's 1.

    Planted bugs this test was checked to fail on (each one at a time, in
    ``YOLOWorldHead.loss_by_feat``): the normaliser without its ``clamp(min=1)``, and the
    normaliser replaced by the number of positives; ``weight=`` dropped from the DFL call
    (``w_i`` not applied); ``weight=`` dropped from the IoU loss; the DFL targets not
    clamped (``max_dis=None``); the ``num_imgs`` factor dropped."""
    num_classes, reg_max = 3, 16
    head = tiny_head(num_classes=num_classes, world_size=1).train()
    g = torch.Generator().manual_seed(3)
    cls_scores, bbox_preds, dist_preds = [], [], []
    for _, width, _ in LEVELS:
        cls_scores.append(torch.randn(2, num_classes, width, width, generator=g))
        bbox_preds.append(torch.rand(2, 4, width, width, generator=g) * 3 + 0.5)
        dist_preds.append(torch.randn(2, width * width, 4, reg_max, generator=g))

    assigned_bboxes = torch.zeros(2, NUM_PRIORS, 4)
    assigned_scores = torch.zeros(2, NUM_PRIORS, num_classes)
    fg_mask = torch.zeros(2, NUM_PRIORS, dtype=torch.bool)
    gt_rows = []
    for img, level, row, col, box, scores in POSITIVES:
        idx, _, _, _ = prior_index(level, row, col)
        assigned_bboxes[img, idx] = torch.tensor(box)
        assigned_scores[img, idx] = torch.tensor(scores) * score_scale
        fg_mask[img, idx] = True
        gt_rows.append([img, int(torch.tensor(scores).argmax()), *box])
    head.assigner = FixedAssignment(num_classes, assigned_bboxes, assigned_scores, fg_mask)
    losses = head.loss_by_feat(cls_scores, bbox_preds, dist_preds, torch.tensor(gt_rows), [{}, {}])

    # the assigner saw the decoded boxes in pixels and the sigmoid scores
    (call,) = head.assigner.calls
    idx, px, py, stride = prior_index(0, 3, 4)
    d = bbox_preds[0][1, :, 3, 4]
    expected_box = torch.stack([px - d[0] * 8, py - d[1] * 8, px + d[2] * 8, py + d[3] * 8])
    torch.testing.assert_close(call['pred_bboxes'][1, idx], expected_box)
    torch.testing.assert_close(call['pred_scores'][1, idx], cls_scores[0][1, :, 3, 4].sigmoid())

    # ---- by hand
    total = float(assigned_scores.sum())
    norm = max(total, 1.0)
    assert (norm == 1.0) == (score_scale == 0.1)
    bce = 0.0
    for level, (_, width, _) in enumerate(LEVELS):
        x = cls_scores[level]  # (2, K, H, W) logits
        t = torch.zeros_like(x)
        for img, lv, row, col, _, scores in POSITIVES:
            if lv == level:
                t[img, :, row, col] = torch.tensor(scores) * score_scale
        bce += float((-t * F.logsigmoid(x) - (1 - t) * F.logsigmoid(-x)).sum())
    bbox, dfl, clamped = 0.0, 0.0, set()
    for img, level, row, col, box, scores in POSITIVES:
        _, px, py, stride = prior_index(level, row, col)
        weight = sum(scores) * score_scale
        d = bbox_preds[level][img, :, row, col]
        cx, cy = px / stride, py / stride  # the prior in stride units
        pred = torch.stack([cx - d[0], cy - d[1], cx + d[2], cy + d[3]])
        target = torch.tensor(box) / stride
        bbox += weight * float(1 - reference_ciou(pred[None], target[None])[0])
        raw = torch.stack([cx - target[0], cy - target[1], target[2] - cx, target[3] - cy])
        clamped.update({'high'} if raw.max() > 14.99 else set())
        clamped.update({'low'} if raw.min() < 0 else set())
        ltrb = raw.clamp(0, reg_max - 1 - 0.01)
        logp = dist_preds[level][img, row * LEVELS[level][1] + col].log_softmax(-1)  # (4, 16)
        for side in range(4):
            lo = int(ltrb[side])
            frac = float(ltrb[side]) - lo
            dfl += weight * float(-(1 - frac) * logp[side, lo] - frac * logp[side, lo + 1])
    assert clamped == {'high', 'low'}  # both ends of the DFL target clamp are exercised
    expected = dict(
        loss_cls=2 * 0.5 * bce / norm,
        loss_bbox=2 * 7.5 * bbox / norm,
        loss_dfl=2 * 1.5 / 4 * dfl / norm,
    )
    for key, value in expected.items():
        assert losses[key].item() == pytest.approx(value, rel=1e-4), key


def hand_outputs(num_classes: int = 3):
    """Eval outputs for a 64 x 64 input: every logit -10 except cell (row 3, col 4) of the
    stride-8 level, whose prior is (36, 28) and whose distances (l, t, r, b) = (1, 0.5, 2, 1.5)
    strides give the box (28, 24, 52, 40); class 1 logit 4, class 2 logit 1."""
    cls = [torch.full((1, num_classes, 64 // s, 64 // s), -10.0) for s in (8, 16, 32)]
    reg = [torch.full((1, 4, 64 // s, 64 // s), 0.5) for s in (8, 16, 32)]
    cls[0][0, 1, 3, 4] = 4.0
    cls[0][0, 2, 3, 4] = 1.0
    reg[0][0, :, 3, 4] = torch.tensor([1.0, 0.5, 2.0, 1.5])
    return cls, reg


def test_predict_maps_letterboxed_box_back_to_original_image():
    head = tiny_head().eval()
    cls, reg = hand_outputs()
    # original 96 x 128 image resized by 0.5 to 48 x 64, letterboxed with 8 rows top/bottom
    meta = dict(
        ori_shape=(96, 128),
        img_shape=(64, 64),
        scale_factor=(0.5, 0.5),
        pad_param=[8.0, 8.0, 0.0, 0.0],
    )
    cfg = dict(TEST_CFG, score_thr=0.05)
    (res,) = head.predict_by_feat(cls, reg, batch_img_metas=[meta], cfg=cfg, rescale=True)
    # (28, 24, 52, 40) - (0, 8, 0, 8) = (28, 16, 52, 32); / 0.5 = (56, 32, 104, 64)
    assert isinstance(res.bboxes, HorizontalBoxes)
    assert res.labels.tolist() == [1, 2]  # multi-label: both classes of the cell, same box
    assert torch.equal(res.bboxes.tensor, torch.tensor([[56.0, 32.0, 104.0, 64.0]] * 2))
    assert res.scores.tolist() == pytest.approx(
        [torch.sigmoid(torch.tensor(4.0)).item(), torch.sigmoid(torch.tensor(1.0)).item()]
    )
    # single label: one detection per prior; no rescale: input coordinates
    (single,) = head.predict_by_feat(
        cls, reg, batch_img_metas=[meta], cfg=dict(cfg, multi_label=False), rescale=False
    )
    assert single.labels.tolist() == [1]
    assert torch.equal(single.bboxes.tensor, torch.tensor([[28.0, 24.0, 52.0, 40.0]]))
    # clipped to the original image
    reg[0][0, :, 3, 4] = torch.tensor([6.0, 0.5, 2.0, 1.5])  # x1 = 36 - 48 < 0
    (clipped,) = head.predict_by_feat(cls, reg, batch_img_metas=[meta], cfg=cfg, rescale=True)
    assert clipped.bboxes.tensor[0].tolist() == [0.0, 32.0, 104.0, 64.0]


def test_predict_class_aware_nms_and_max_per_img():
    head = tiny_head().eval()
    cls, reg = hand_outputs()
    # a neighbour cell (row 3, col 5), prior (44, 28), predicts an overlapping box
    cls[0][0, 1, 3, 5] = 3.0
    reg[0][0, :, 3, 5] = torch.tensor([2.0, 0.5, 1.0, 1.5])  # (28, 24, 52, 40): IoU 1 with it
    meta = dict(ori_shape=(64, 64), img_shape=(64, 64), scale_factor=(1.0, 1.0))
    (res,) = head.predict_by_feat(
        cls, reg, batch_img_metas=[meta], cfg=dict(TEST_CFG, score_thr=0.05), rescale=True
    )
    # the class-1 duplicate is suppressed; class 2 at the same place is kept
    assert res.labels.tolist() == [1, 2]
    (capped,) = head.predict_by_feat(
        cls,
        reg,
        batch_img_metas=[meta],
        cfg=dict(TEST_CFG, score_thr=0.05, max_per_img=1),
        rescale=True,
    )
    assert capped.labels.tolist() == [1]
    (none,) = head.predict_by_feat(
        cls, reg, batch_img_metas=[meta], cfg=dict(TEST_CFG, score_thr=0.99), rescale=True
    )
    assert len(none) == 0 and isinstance(none.bboxes, HorizontalBoxes)


def test_predict_entry_point_with_data_samples():
    head = tiny_head().eval()
    feats, txt = tiny_inputs(batch=1)
    sample = DetDataSample()
    sample.set_metainfo(dict(ori_shape=(64, 64), img_shape=(64, 64), scale_factor=(1.0, 1.0)))
    with torch.no_grad():
        (res,) = head.predict(feats, txt, None, [sample], rescale=True)
    assert len(res) <= 300 and set(res.keys()) == {'bboxes', 'scores', 'labels'}
    assert (res.scores > 0.001).all() and ((res.labels >= 0) & (res.labels < 3)).all()


def test_loss_and_predict_under_bfloat16_autocast():
    head = tiny_head().train()
    feats, txt = tiny_inputs()
    gt = torch.tensor([[0, 1, 10, 10, 30, 40], [1, 0, 20, 20, 40, 40.0]])
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = head.loss(feats, txt, None, dict(bboxes_labels=gt, img_metas=[{}, {}]))
    assert all(torch.isfinite(v) and v.dtype == torch.float32 for v in losses.values())
    assert losses['loss_bbox'].item() > 0
    head.eval()
    meta = dict(ori_shape=(64, 64), img_shape=(64, 64), scale_factor=(1.0, 1.0))
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        (res,) = head.predict_by_feat(
            *head([f[:1] for f in feats], txt[:1]), batch_img_metas=[meta], rescale=True
        )
    assert torch.isfinite(res.bboxes.tensor).all()


def test_freeze_all_keeps_head_frozen_in_train_mode():
    module = MODELS.build(
        head_module_cfg(0.25, 128, in_channels=[32, 64, 128], embed_dims=16, freeze_all=True)
    )
    module.train()
    assert not any(p.requires_grad for p in module.parameters())
    assert not module.cls_contrasts[0].norm.training and not module.cls_preds[0][0].bn.training
