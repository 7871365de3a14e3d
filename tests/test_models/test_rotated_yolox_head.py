"""RotatedYOLOXHead: targets and losses (empty images, AMP, overfitting) and prediction."""

import math

import pytest
import torch
from mmengine.structures import InstanceData

from ai4rs.registry import MODELS
from ai4rs.structures import DetDataSample
from ai4rs.structures.bbox import RotatedBoxes
from tests.test_models.yolox_builders import build_rotated_yolox


def _sample(boxes, labels, size=64):
    sample = DetDataSample()
    sample.set_metainfo(
        dict(
            img_shape=(size, size),
            ori_shape=(size, size),
            batch_input_shape=(size, size),
            pad_shape=(size, size),
            scale_factor=(1.0, 1.0),
        )
    )
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor(boxes, dtype=torch.float32).view(-1, 5),
        labels=torch.tensor(labels, dtype=torch.long),
    )
    return sample


def _image_with_boxes(boxes, size=64):
    """A grey image with each rbox painted in a bright colour (so it can be learned)."""
    img = torch.full((1, 3, size, size), 60.0)
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing='ij')
    for cx, cy, w, h, t in boxes:
        dx, dy = xs - cx, ys - cy
        ox = math.cos(t) * dx + math.sin(t) * dy
        oy = -math.sin(t) * dx + math.cos(t) * dy
        inside = (ox.abs() <= w / 2) & (oy.abs() <= h / 2)
        img[0, :, inside] = torch.tensor([[230.0], [200.0], [40.0]])
    return img


BOXES = [[20.0, 22.0, 24.0, 10.0, 0.4], [44.0, 44.0, 16.0, 16.0, -0.2]]


def test_loss_without_objects_is_finite_and_connected(tiny_yolox):
    tiny_yolox.train()
    tiny_yolox.bbox_head.use_l1 = True
    samples = [_sample([], []), _sample([], [])]
    losses = tiny_yolox.loss(torch.rand(2, 3, 64, 64) * 255, samples)
    assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_obj', 'loss_l1'}
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses['loss_cls'].item() == 0 and losses['loss_bbox'].item() == 0
    assert losses['loss_l1'].item() == 0 and losses['loss_obj'].item() > 0
    sum(losses.values()).backward()
    head = tiny_yolox.bbox_head
    # every branch stays in the graph (DDP needs it), with zero gradient from the empty terms
    for convs in (
        head.multi_level_conv_cls,
        head.multi_level_conv_reg,
        head.multi_level_conv_ang,
        head.multi_level_conv_obj,
    ):
        assert all(conv.weight.grad is not None for conv in convs)
    assert head.multi_level_conv_obj[0].weight.grad.abs().sum() > 0


def test_loss_without_objects_stays_finite_when_sizes_overflow():
    """No positive: the zero placeholders must not touch exp(d), which can be inf."""
    head = _head()
    cls_scores, bbox_preds, angle_preds, objectnesses = _head_outputs()
    bbox_preds = [b.clone().requires_grad_(True) for b in bbox_preds]
    with torch.no_grad():
        bbox_preds[0][:, 2:] = 200.0  # exp(200) overflows float32
    metas = [dict(img_shape=(32, 32))] * cls_scores[0].size(0)
    empty = InstanceData(bboxes=torch.zeros(0, 5), labels=torch.zeros(0, dtype=torch.long))
    losses = head.loss_by_feat(
        cls_scores, bbox_preds, angle_preds, objectnesses, [empty] * len(metas), metas
    )
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(torch.isfinite(b.grad).all() for b in bbox_preds)


def test_targets_and_losses_with_objects(tiny_yolox):
    head = tiny_yolox.bbox_head
    tiny_yolox.train()
    sample = _sample(BOXES, [3, 7])
    sample_empty = _sample([], [])
    losses = tiny_yolox.loss(_image_with_boxes(BOXES).repeat(2, 1, 1, 1), [sample, sample_empty])
    assert 'loss_l1' not in losses
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    # targets of one image, through the head's own helper
    feats = tiny_yolox.extract_feat(_image_with_boxes(BOXES))
    cls_scores, bbox_preds, angle_preds, objectnesses = head(feats)
    priors = head.flat_priors(cls_scores)
    flat = head.flatten_levels
    decoded = head._bbox_decode(priors, flat(bbox_preds, 4), flat(angle_preds, 1))[0]
    head.use_l1 = True
    fg, cls_t, obj_t, bbox_t, l1_t, num_pos = head._get_targets_single(
        priors,
        flat(cls_scores, 15)[0].detach(),
        decoded.detach(),
        flat(objectnesses, 1)[0, :, 0].detach(),
        sample.gt_instances,
        sample.metainfo,
    )
    assert num_pos == int(fg.sum()) == len(cls_t) == len(bbox_t) == len(l1_t) > 0
    assert obj_t.shape == (priors.shape[0], 1) and obj_t.sum() == num_pos
    # soft classification targets: one class per positive, value = IoU in (0, 1]
    assert ((cls_t > 0).sum(1) <= 1).all() and set(cls_t.argmax(1).tolist()) <= {3, 7}
    assert (cls_t.max(1).values <= 1).all()
    # bbox targets are GT boxes; L1 targets encode them against the positives' priors
    gt = torch.tensor(BOXES)
    assert all(any(torch.equal(b, g) for g in gt) for b in bbox_t)
    pos_priors = priors[fg]
    expected_l1 = torch.cat(
        [
            (bbox_t[:, :2] - pos_priors[:, :2]) / pos_priors[:, 2:],
            torch.log(bbox_t[:, 2:4] / pos_priors[:, 2:] + 1e-8),
            bbox_t[:, 4:] / 5,
        ],
        dim=1,
    )
    torch.testing.assert_close(l1_t, expected_l1)


def test_losses_finite_under_bf16_autocast(tiny_yolox):
    tiny_yolox.train()
    tiny_yolox.bbox_head.use_l1 = True
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = tiny_yolox.loss(_image_with_boxes(BOXES), [_sample(BOXES, [1, 2])])
        empty = tiny_yolox.loss(torch.rand(1, 3, 64, 64) * 255, [_sample([], [])])
    for value in list(losses.values()) + list(empty.values()):
        assert value.dtype == torch.float32 and torch.isfinite(value)
    sum(losses.values()).backward()
    grads = [p.grad for p in tiny_yolox.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_overfits_one_image():
    torch.manual_seed(0)
    model = build_rotated_yolox('tiny', num_classes=2)
    model.bbox_head.use_l1 = True
    model.train()
    image = _image_with_boxes(BOXES)
    samples = [_sample(BOXES, [0, 1])]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    history = []
    for _ in range(30):
        losses = model.loss(image, samples)
        total = sum(losses.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append({k: v.item() for k, v in losses.items()})
    first = sum(sum(h.values()) for h in history[:3]) / 3
    last = sum(sum(h.values()) for h in history[-3:]) / 3
    assert last < 0.65 * first  # measured: about 0.38
    # the rotated box regression itself improves (measured: 4.6 -> 2.0)
    assert sum(h['loss_bbox'] for h in history[-3:]) < 0.75 * sum(
        h['loss_bbox'] for h in history[:3]
    )


def _head_outputs(num_classes=3, size=32):
    """Raw outputs for a 32x32 input (levels 4x4, 2x2, 1x1) that predict nothing."""
    sizes = [size // s for s in (8, 16, 32)]
    cls = [torch.full((1, num_classes, n, n), -10.0) for n in sizes]
    bbox = [torch.zeros(1, 4, n, n) for n in sizes]
    angle = [torch.zeros(1, 1, n, n) for n in sizes]
    obj = [torch.full((1, 1, n, n), 10.0) for n in sizes]
    return cls, bbox, angle, obj


def _head(**test_cfg):
    cfg = dict(score_thr=0.01, nms=dict(type='nms_rotated', iou_threshold=0.1))
    cfg.update(test_cfg)
    return MODELS.build(
        dict(type='RotatedYOLOXHead', num_classes=3, in_channels=4, feat_channels=4, test_cfg=cfg)
    )


def test_predict_decodes_thresholds_and_nms():
    head = _head()
    cls, bbox, angle, obj = _head_outputs()
    # level 0 (stride 8), cell (row 1, col 2): prior (16, 8)
    cls[0][0, 1, 1, 2] = math.log(0.9 / 0.1)
    bbox[0][0, :, 1, 2] = torch.tensor([0.5, 0.25, math.log(3.0), math.log(1.5)])
    angle[0][0, 0, 1, 2] = 2.0  # le90: 2 - pi
    # the neighbouring cell predicts the same box, less confidently: suppressed by NMS
    cls[0][0, 1, 1, 3] = math.log(0.6 / 0.4)
    bbox[0][0, :, 1, 3] = torch.tensor([-0.5, 0.25, math.log(3.0), math.log(1.5)])
    angle[0][0, 0, 1, 3] = 2.0 - math.pi
    # same place, another class: kept (NMS is per class)
    cls[1][0, 2, 0, 1] = math.log(0.7 / 0.3)
    bbox[1][0, :, 0, 1] = torch.tensor([0.25, 0.625, math.log(1.5), math.log(0.75)])
    angle[1][0, 0, 0, 1] = 2.0
    # below score_thr: dropped
    cls[2][0, 0, 0, 0] = math.log(0.005 / 0.995)
    results = head.predict_by_feat(
        cls, bbox, angle, obj, batch_img_metas=[dict(scale_factor=(1.0, 1.0))]
    )
    assert len(results) == 1
    res = results[0]
    assert isinstance(res.bboxes, RotatedBoxes)
    assert res.labels.tolist() == [1, 2]
    sig10 = 1 / (1 + math.exp(-10))
    torch.testing.assert_close(res.scores, torch.tensor([0.9, 0.7]) * sig10)
    expected = torch.tensor([20.0, 10.0, 24.0, 12.0, 2.0 - math.pi])
    torch.testing.assert_close(res.bboxes.tensor[0], expected)
    torch.testing.assert_close(res.bboxes.tensor[1], expected)


def _edges(cx, cy, w, h, t):
    """Centre, width-edge and height-edge vectors of a rotated box (clockwise angle, y down)."""
    return ((cx, cy), (w * math.cos(t), w * math.sin(t)), (-h * math.sin(t), h * math.cos(t)))


def test_predict_rescale_and_no_nms():
    head = _head()
    cls, bbox, angle, obj = _head_outputs()
    cls[0][0, 0, 1, 2] = 5.0
    bbox[0][0, :, 1, 2] = torch.tensor([0.5, 0.25, math.log(3.0), math.log(1.5)])
    angle[0][0, 0, 1, 2] = 0.3
    # decoded in the network input: (20, 10, 24, 12, 0.3); the input was the original image
    # scaled by (sx, sy) = (2, 0.5), so the original image is the input scaled by (1/2, 2)
    res = head.predict_by_feat(
        cls, bbox, angle, obj, rescale=True, batch_img_metas=[dict(scale_factor=(2.0, 0.5))]
    )[0]
    (cx, cy), wvec, hvec = _edges(20.0, 10.0, 24.0, 12.0, 0.3)
    inv = (0.5, 2.0)
    exp_ctr = (cx * inv[0], cy * inv[1])
    exp_w = math.hypot(wvec[0] * inv[0], wvec[1] * inv[1])  # image of the width edge
    exp_hvec = (hvec[0] * inv[0], hvec[1] * inv[1])  # image of the height edge, kept exactly
    got = res.bboxes.tensor[0].tolist()
    assert got[0] == pytest.approx(exp_ctr[0], abs=1e-4)
    assert got[1] == pytest.approx(exp_ctr[1], abs=1e-4)
    assert got[2] == pytest.approx(exp_w, abs=1e-4)
    assert exp_w == pytest.approx(18.24, abs=0.01)  # not 12: the angle matters
    _, _, got_hvec = _edges(*got)
    sign = 1 if got_hvec[1] * exp_hvec[1] >= 0 else -1
    assert got_hvec[0] * sign == pytest.approx(exp_hvec[0], abs=1e-4)
    assert got_hvec[1] * sign == pytest.approx(exp_hvec[1], abs=1e-4)
    with pytest.raises(ValueError, match='scale_factor'):
        head.predict_by_feat(cls, bbox, angle, obj, rescale=True, batch_img_metas=[{}])
    many = head.predict_by_feat(
        *_head_outputs(), cfg=dict(score_thr=0.0), with_nms=False, batch_img_metas=[{}]
    )[0]
    assert len(many) == 16 + 4 + 1  # one detection per prior without threshold and NMS


def test_predict_rescale_round_trips_axis_aligned_boxes_and_letterbox():
    """A box at t = 0 scaled by (sx, sy) and shifted by a letterbox pad comes back exactly."""
    head = _head()
    cls, bbox, angle, obj = _head_outputs()
    cls[0][0, 0, 1, 2] = 5.0
    bbox[0][0, :, 1, 2] = torch.tensor([0.5, 0.25, math.log(3.0), math.log(1.5)])
    angle[0][0, 0, 1, 2] = 0.0
    meta = dict(scale_factor=(2.0, 0.5), pad_param=[3.0, 5.0, 4.0, 6.0])
    res = head.predict_by_feat(cls, bbox, angle, obj, rescale=True, batch_img_metas=[meta])[0]
    # network box (20, 10, 24, 12, 0): minus (left, top) = (4, 3), divided by (2, 0.5)
    torch.testing.assert_close(
        res.bboxes.tensor[0],
        torch.tensor([(20.0 - 4.0) / 2, (10.0 - 3.0) / 0.5, 24.0 / 2, 12.0 / 0.5, 0.0]),
    )


def test_model_predict_mode(tiny_yolox):
    tiny_yolox.eval()
    sample = _sample(BOXES, [0, 1])
    with torch.no_grad():
        out = tiny_yolox(torch.rand(1, 3, 64, 64) * 255, [sample], mode='predict')
    pred = out[0].pred_instances
    assert isinstance(pred.bboxes, RotatedBoxes) and pred.bboxes.tensor.shape[1] == 5
    assert len(pred.scores) == len(pred.labels) == len(pred.bboxes)
    assert (pred.scores >= 0.01).all()


def test_head_argument_errors():
    base = dict(type='RotatedYOLOXHead', num_classes=3, in_channels=4, feat_channels=4)
    with pytest.raises(ValueError, match='angle_version'):
        MODELS.build(dict(base, angle_version='le45'))
    with pytest.raises(NotImplementedError, match='dcn'):
        MODELS.build(dict(base, dcn_on_last_conv=True))
    with pytest.raises(ValueError, match='loss_angle'):
        MODELS.build(dict(base, separate_angle=True))


def test_separate_angle_losses():
    model = build_rotated_yolox(
        'tiny',
        separate_angle=True,
        loss_bbox=dict(type='L1Loss', reduction='sum'),
        loss_angle=dict(type='L1Loss', reduction='sum', loss_weight=2.0),
    )
    model.train()
    losses = model.loss(_image_with_boxes(BOXES), [_sample(BOXES, [0, 1])])
    assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_obj', 'loss_angle'}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    with pytest.raises(ValueError, match='RotatedIoULoss'):
        build_rotated_yolox(
            'tiny', separate_angle=True, loss_angle=dict(type='L1Loss', reduction='sum')
        )
