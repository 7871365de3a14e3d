"""RotatedYOLOWorldHead: YOLO-World v2 weights load into it, its boxes decode and train.

Expectations are independent of the head's code: upstream's v2-S key list (the reference
file), boxes written by hand into the head's outputs, the horizontal YOLO-World head's decoding,
invariants (the loss does not depend on how the ground truth's rectangle is written, texts in
another order give the same boxes).
"""

import copy
import json
import logging
import math
import os.path as osp

import pytest
import torch
from mmengine.structures import InstanceData

from ai4rs.registry import MODELS
from ai4rs.structures import DetDataSample
from ai4rs.structures.bbox import RotatedBoxes, rbox_corners
from ai4rs.utils import register_all_modules
from ai4rs.utils.checkpoint import fit_checkpoint_to_model
from ai4rs.utils.config import load_config
from tests.conftest import DATA_DIR, REPO_ROOT

register_all_modules()

RECIPE = osp.join(
    REPO_ROOT,
    'configs',
    'yolo_world_rotated',
    'yolo_world_rotated_v2_s_vlpan_bn_2e-4_36e_dota_le90.py',
)
QUICKSTART = osp.join(
    REPO_ROOT, 'configs', 'yolo_world_rotated', 'yolo_world_rotated_quickstart_synthetic.py'
)
TEXTS = ['vehicle', 'pool', 'court']


def _model_cfg(config, clip_dir, train=True):
    cfg = load_config(config)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.text_model.model_name = str(clip_dir)
    if not train:
        model_cfg.train_cfg = None
    return model_cfg


@pytest.fixture(scope='module')
def tiny_model(tiny_clip_dir):
    torch.manual_seed(0)
    model = MODELS.build(_model_cfg(QUICKSTART, tiny_clip_dir))
    model.init_weights()
    return model


def _samples(n, texts=TEXTS, size=(256, 256)):
    meta = dict(img_shape=size, ori_shape=size, scale_factor=(1.0, 1.0), texts=list(texts))
    return [DetDataSample(metainfo=dict(meta)) for _ in range(n)]


# ----------------------------------------------------------------------- weights
def test_v2_s_holds_every_yolo_world_v2_weight_plus_the_angle_branch(tmp_path):
    """The v2-S recipe's model has upstream YOLO-World v2-S's keys with upstream's shapes,
    and exactly 42 new ones (3 levels x the angle branch); a checkpoint file with upstream's
    keys loads every weight it has, and the load report names the angle branch only."""
    pytest.importorskip('transformers')
    from mmengine.runner.checkpoint import load_state_dict

    from ai4rs.testing.tiny_clip import make_tiny_clip

    clip_dir = make_tiny_clip(
        tmp_path / 'clip_b32',
        weights=False,
        hidden_size=512,
        intermediate_size=2048,
        num_hidden_layers=12,
        num_attention_heads=8,
        vocab_size=49408,
    )
    model = MODELS.build(_model_cfg(RECIPE, clip_dir))
    with open(osp.join(DATA_DIR, 'yolo_world_v2_state_dict_keys.json')) as f:
        ref = json.load(f)['yolo_world_v2_s_vlpan_bn_2e-4_80e_8gpus_mask-refine_finetune_coco']
    ref.pop('_params')
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert {k: ours.get(k) for k in ref} == ref

    # the new keys, written out: per level ConvModule, ConvModule, Conv2d; 32 = 128 // 4
    in_channels = [128, 256, 512]
    expected_new = {}
    for level, in_ch in enumerate(in_channels):
        prefix = f'bbox_head.head_module.ang_preds.{level}'
        for i, c_in in ((0, in_ch), (1, 32)):
            expected_new[f'{prefix}.{i}.conv.weight'] = [32, c_in, 3, 3]
            for name in ('weight', 'bias', 'running_mean', 'running_var'):
                expected_new[f'{prefix}.{i}.bn.{name}'] = [32]
            expected_new[f'{prefix}.{i}.bn.num_batches_tracked'] = []
        expected_new[f'{prefix}.2.weight'] = [1, 32, 1, 1]
        expected_new[f'{prefix}.2.bias'] = [1]
    assert {k: v for k, v in ours.items() if k not in ref} == expected_new
    assert len(expected_new) == 42

    # an upstream-keyed checkpoint file (random values of upstream's shapes) through the
    # strict-fit check that load_from uses, then mmengine's loader
    g = torch.Generator().manual_seed(0)
    upstream = {
        k: (torch.randn(shape, generator=g) if shape else torch.tensor(7))
        for k, shape in ref.items()
    }
    ckpt_file = tmp_path / 'yolo_world_v2_s_coco.pth'
    torch.save({'state_dict': upstream, 'meta': {}}, ckpt_file)
    checkpoint = torch.load(ckpt_file, weights_only=True)
    # a logger of the test's own: the current MMLogger's console level and stream depend
    # on which runner ran before in this worker
    records = []
    log = logging.getLogger('ai4rs.tests.load_report')
    log.propagate = False
    log.setLevel(logging.INFO)
    handler = logging.Handler()
    handler.emit = records.append
    log.addHandler(handler)
    try:
        fit = fit_checkpoint_to_model(model, checkpoint, source='upstream v2-S', logger=log)
    finally:
        log.removeHandler(handler)
    assert sorted(fit.missing) == sorted(expected_new) and not fit.unexpected
    assert not fit.wrong_shape
    assert [r.levelno for r in records] == [logging.INFO]
    report = records[0].getMessage()
    assert "upstream v2-S: loaded 608 of the model's 650 weights." in report
    assert 'new in the model (not in the checkpoint, they keep their initialisation): ' in report
    assert 'bbox_head.head_module.ang_preds (42)' in report
    assert 'not in the model' not in report
    load_state_dict(model, checkpoint['state_dict'], strict=False)
    state = model.state_dict()
    for key in ref:
        assert torch.equal(state[key], upstream[key]), key


# ------------------------------------------------------------------------ decoding
def test_fresh_angle_branch_predicts_the_horizontal_boxes(tiny_model):
    """The angle branch's last conv starts at zero: the decoded boxes are YOLO-World's
    horizontal boxes (same distances, same priors), angle 0."""
    head = tiny_model.bbox_head
    head.eval()
    torch.manual_seed(1)
    feats = [torch.randn(1, c, s, s) for c, s in ((64, 32), (128, 16), (256, 8))]
    txt = torch.randn(1, 3, 512)
    with torch.no_grad():
        cls, dist, ang = head(feats, txt)
        rboxes, scores = head.decode_by_feat(cls, dist, ang)
        hbox_head = MODELS.build(
            dict(
                type='YOLOWorldHead',
                head_module=dict(
                    type='YOLOWorldHeadModule',
                    num_classes=3,
                    in_channels=[64, 128, 256],
                    embed_dims=512,
                    use_bn_head=True,
                ),
            )
        )
        hboxes, hscores = hbox_head.decode_by_feat(cls, dist)
    assert torch.all(ang[0] == 0)
    x1, y1, x2, y2 = hboxes.unbind(-1)
    expected = torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], -1)
    torch.testing.assert_close(rboxes[..., :4], expected, atol=1e-4, rtol=0)
    assert torch.all(rboxes[..., 4] == 0)
    torch.testing.assert_close(scores, hscores)


def _outputs_with_one_box(head, rbox_at, level=0, size=(32, 16, 8), num_texts=3, label=1):
    """Eval-mode outputs (cls, dist, angle) of one image where only the prior (row, col) of
    ``level`` is confident (text ``label``) and predicts distances / angle written by hand."""
    (row, col), (l, t, r, b), angle = rbox_at
    cls = [torch.full((1, num_texts, s, s), -20.0) for s in size]
    dist = [torch.ones(1, 4, s, s) for s in size]
    ang = [torch.zeros(1, 1, s, s) for s in size]
    cls[level][0, label, row, col] = 5.0
    dist[level][0, :, row, col] = torch.tensor([l, t, r, b])
    ang[level][0, 0, row, col] = angle
    return cls, dist, ang


def test_predict_decodes_a_hand_written_rotated_box(tiny_model):
    """A prior at (row 10, col 12) of stride 8 (point (100, 84)) predicting distances (l, t,
    r, b) = (3, 1, 1, 2) strides at angle 0.6: w = 4 * 8, h = 3 * 8, centre = point + R(0.6)
    ((r - l) / 2, (b - t) / 2) * 8 = point + R(0.6) (-8, 4)."""
    head = tiny_model.bbox_head
    a = 0.6
    outs = _outputs_with_one_box(head, ((10, 12), (3.0, 1.0, 1.0, 2.0), a))
    meta = dict(img_shape=(256, 256), ori_shape=(512, 512), scale_factor=(0.5, 0.5))
    cfg = dict(score_thr=0.5, nms=dict(type='nms_rotated', iou_threshold=0.1), max_per_img=10)
    (res,) = head.predict_by_feat(*outs, batch_img_metas=[meta], cfg=cfg, rescale=False)
    assert isinstance(res.bboxes, RotatedBoxes) and len(res) == 1
    px, py = 12 * 8 + 4, 10 * 8 + 4
    dx, dy = -8.0, 4.0
    cx = px + math.cos(a) * dx - math.sin(a) * dy
    cy = py + math.sin(a) * dx + math.cos(a) * dy
    expected = torch.tensor([[cx, cy, 32.0, 24.0, a]])
    torch.testing.assert_close(res.bboxes.tensor, expected, atol=1e-4, rtol=0)
    assert res.labels.tolist() == [1]
    # rescaled to the original image: everything but the angle doubles
    (res2,) = head.predict_by_feat(*outs, batch_img_metas=[meta], cfg=cfg, rescale=True)
    torch.testing.assert_close(
        res2.bboxes.tensor, expected * torch.tensor([2.0, 2, 2, 2, 1]), atol=1e-4, rtol=0
    )


def test_predicted_angle_is_wrapped_into_le90(tiny_model):
    """Angle 2.0 rad (beyond pi/2) is reported as 2.0 - pi; the rectangle is the same."""
    head = tiny_model.bbox_head
    outs = _outputs_with_one_box(head, ((5, 5), (2.0, 1.0, 2.0, 1.0), 2.0))
    meta = dict(img_shape=(256, 256), ori_shape=(256, 256), scale_factor=(1.0, 1.0))
    cfg = dict(score_thr=0.5, nms=dict(type='nms_rotated', iou_threshold=0.1))
    (res,) = head.predict_by_feat(*outs, batch_img_metas=[meta], cfg=cfg, rescale=False)
    t = float(res.bboxes.tensor[0, 4])
    assert -math.pi / 2 <= t < math.pi / 2
    assert t == pytest.approx(2.0 - math.pi, abs=1e-5)
    corners = rbox_corners(res.bboxes.tensor)[0]
    raw = torch.tensor([[44.0, 44.0, 32.0, 16.0, 2.0]])
    got = sorted(tuple(round(v, 3) for v in p.tolist()) for p in corners)
    want = sorted(tuple(round(v, 3) for v in p.tolist()) for p in rbox_corners(raw)[0])
    assert got == want


def test_detections_follow_the_vocabulary_order(tiny_model):
    """Texts in another order: the same boxes and scores, labels permuted accordingly."""
    tiny_model.eval()
    torch.manual_seed(3)
    img = torch.rand(1, 3, 256, 256)
    # every (prior, text) pair kept (no cap, NMS that removes nothing): ties cannot reorder
    tiny_model.bbox_head.test_cfg = dict(
        multi_label=True,
        score_thr=0.0,
        nms_pre=100000,
        nms=dict(type='nms_rotated', iou_threshold=1.0),
    )
    with torch.no_grad():
        a = tiny_model(img, _samples(1, ['vehicle', 'pool', 'court']), mode='predict')[0]
        b = tiny_model(img, _samples(1, ['court', 'vehicle', 'pool']), mode='predict')[0]
    pa, pb = a.pred_instances, b.pred_instances
    assert len(pa) == len(pb) == 3 * (32 * 32 + 16 * 16 + 8 * 8)
    # text i of order a has index perm[i] in order b
    perm = torch.tensor([1, 2, 0])

    def rows(scores, labels, boxes):
        return sorted(
            (round(s, 5), lb, *(round(v, 2) for v in box))
            for s, lb, box in zip(scores.tolist(), labels.tolist(), boxes.tolist())
        )

    assert rows(pa.scores, perm[pa.labels], pa.bboxes.tensor) == rows(
        pb.scores, pb.labels, pb.bboxes.tensor
    )


# ------------------------------------------------------------------------ training
def _train_outputs(head, seed=0):
    head.train()
    torch.manual_seed(seed)
    feats = [torch.randn(2, c, s, s) for c, s in ((64, 32), (128, 16), (256, 8))]
    txt = torch.randn(2, 3, 512)
    return head(feats, txt)


def _gt(rboxes, labels):
    return InstanceData(bboxes=RotatedBoxes(torch.tensor(rboxes)), labels=torch.tensor(labels))


def _losses(head, outs, gts):
    metas = [dict(batch_input_shape=(256, 256))] * len(gts)
    return head.loss_by_feat(*outs, gts, metas)


def test_loss_does_not_depend_on_how_the_ground_truth_is_written(tiny_model):
    """One rectangle, three ways: (w, h, t), (w, h, t - pi) and (h, w, t + pi / 2). The
    assignment, the rotated IoU and the DFL targets (in the predicted angle's frame) see the
    same box, so every loss is equal; DFL targets taken in the ground truth's own frame would
    differ (left and right, top and bottom exchange)."""
    head = tiny_model.bbox_head
    outs = _train_outputs(head)
    w, h, t = 60.0, 24.0, 0.5
    ways = [(w, h, t), (w, h, t - math.pi), (h, w, t + math.pi / 2)]
    results = []
    for ww, hh, tt in ways:
        gts = [
            _gt([[100.0, 120.0, ww, hh, tt], [40.0, 50.0, 30.0, 18.0, -1.2]], [0, 2]),
            _gt([[128.0, 128.0, ww, hh, tt]], [1]),
        ]
        with torch.no_grad():
            results.append({k: float(v) for k, v in _losses(head, outs, gts).items()})
    for other in results[1:]:
        for key in results[0]:
            assert other[key] == pytest.approx(results[0][key], rel=1e-5, abs=1e-6), key
    assert results[0]['loss_bbox'] > 0 and results[0]['loss_dfl'] > 0


def test_a_prediction_equal_to_its_ground_truth_has_zero_box_loss(tiny_model):
    """Every prior inside the ground truth predicts exactly it (distances encoded by hand in
    the box's frame, the angle 0.7): the positives' rotated IoU is 1, loss_bbox is 0."""
    head = tiny_model.bbox_head
    cls, dist, ang, dist_logits = _train_outputs(head)
    gt_box = (120.0, 100.0, 70.0, 30.0, 0.7)
    cx, cy, w, h, t = gt_box
    dist = [d.detach().clone() for d in dist]
    ang = [a.detach().clone() for a in ang]
    for level, stride in enumerate((8, 16, 32)):
        size = dist[level].shape[-1]
        for row in range(size):
            for col in range(size):
                px, py = (col + 0.5) * stride, (row + 0.5) * stride
                # the point in the box's frame: R(-t) (p - c)
                ox = math.cos(t) * (px - cx) + math.sin(t) * (py - cy)
                oy = -math.sin(t) * (px - cx) + math.cos(t) * (py - cy)
                ltrb = [w / 2 + ox, h / 2 + oy, w / 2 - ox, h / 2 - oy]
                if min(ltrb) <= 0:
                    continue
                dist[level][0, :, row, col] = torch.tensor(ltrb) / stride
                ang[level][0, 0, row, col] = t
    gts = [_gt([list(gt_box)], [1])]
    # image 0 holds the exact predictions; image 1 (random predictions) is left out
    one = [c[:1] for c in cls], [d[:1] for d in dist], [a[:1] for a in ang]
    one_logits = [d[:1] for d in dist_logits]
    with torch.no_grad():
        losses = head.loss_by_feat(*one, one_logits, gts, [dict(batch_input_shape=(256, 256))])
    assert float(losses['loss_bbox']) == pytest.approx(0.0, abs=1e-4)
    assert float(losses['loss_dfl']) > 0  # the distributions were not set


def test_gradient_reaches_the_angle_branch(tiny_model):
    """The angle branch learns from the box loss: its last conv gets a non-zero gradient at
    the first step, and the convs before it once that conv is no longer zero."""
    head = tiny_model.bbox_head
    head.zero_grad()
    gts = [
        _gt([[100.0, 120.0, 60.0, 24.0, 0.5]], [0]),
        _gt([[128.0, 128.0, 40.0, 20.0, -0.9]], [1]),
    ]
    losses = _losses(head, _train_outputs(head), gts)
    sum(losses.values()).backward()
    last = [p[-1] for p in head.head_module.ang_preds]
    assert any(float(conv.weight.grad.abs().sum()) > 0 for conv in last)
    assert any(float(conv.bias.grad.abs().sum()) > 0 for conv in last)
    with torch.no_grad():
        for conv in last:
            conv.weight.add_(0.01)
    head.zero_grad()
    losses = _losses(head, _train_outputs(head), gts)
    sum(losses.values()).backward()
    first = [p[0].conv.weight.grad for p in head.head_module.ang_preds]
    assert any(float(g.abs().sum()) > 0 for g in first)
    with torch.no_grad():
        for conv in last:
            conv.weight.zero_()
