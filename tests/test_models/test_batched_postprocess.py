"""``postprocess_batch`` (one vectorised candidate selection over the batch, what
``predict_by_feat`` runs) gives exactly the per-image ``postprocess_decoded`` results: same
boxes, scores, labels, in the same order, for each family, on 3 images of different content."""

import copy

import pytest
import torch

from ai4rs.models.utils.dense_head_utils import (
    batched_filter_scores_and_topk,
    filter_scores_and_topk,
)
from ai4rs.registry import MODELS
from ai4rs.utils import register_all_modules

register_all_modules()

METAS = [  # different letterbox paddings and scales per image
    dict(scale_factor=(0.5, 0.5), ori_shape=(200, 180), pad_param=(4.0, 4.0, 10.0, 10.0)),
    dict(scale_factor=(2.0, 1.5), ori_shape=(50, 40)),
    dict(scale_factor=(1.0, 1.0), ori_shape=(64, 64), pad_param=(0.0, 0.0, 0.0, 0.0)),
]


def _images(size):
    gen = torch.Generator().manual_seed(3)
    imgs = torch.rand(3, 3, size, size, generator=gen)
    imgs[1] = imgs[1] * 4 - 2  # different content, different statistics
    imgs[2, :, : size // 2] = 0
    return imgs


def _decoded(model, size):
    model.eval()
    with torch.no_grad():
        return model.bbox_head.decode_by_feat(*model(_images(size), None, 'tensor'))


def _with_ties(scores, quantile):
    """Scores stretched to [0, 1] and rounded to 1/20 (many equal scores: the order of ties
    is tested; an untrained model's scores lie close together), with a threshold that keeps
    about ``1 - quantile`` of the maxima."""
    scores = ((scores - scores.min()) / (scores.max() - scores.min()) * 20).round() / 20
    return scores, float(scores.max(-1).values.flatten().quantile(quantile))


def assert_same_results(head, boxes, scores, cfg, metas, rescale=True):
    batched = head.postprocess_batch(boxes, scores, metas, copy.deepcopy(cfg), rescale)
    assert len(batched) == boxes.size(0)
    total = 0
    for i, result in enumerate(batched):
        single = head.postprocess_decoded(boxes[i], scores[i], metas[i], cfg, rescale)
        assert type(result.bboxes) is type(single.bboxes) is head.box_type
        assert torch.equal(result.bboxes.tensor, single.bboxes.tensor), i
        assert torch.equal(result.scores, single.scores), i
        assert torch.equal(result.labels, single.labels), i
        total += len(single)
    # and the candidates themselves, before NMS
    num_candidates = 0
    for i, cand in enumerate(head.select_candidates_batch(boxes, scores, cfg)):
        single = head.select_candidates(boxes[i], scores[i], cfg)
        assert torch.equal(cand.bboxes.tensor, single.bboxes.tensor)
        assert torch.equal(cand.scores, single.scores)
        assert torch.equal(cand.labels, single.labels)
        num_candidates += len(single)
    return num_candidates, total


def test_batched_filter_equals_the_per_image_filter_by_hand():
    scores = torch.tensor(
        [
            [[0.9, 0.2], [0.5, 0.4], [0.1, 0.7]],
            [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]],
            [[0.3, 0.6], [0.55, 0.3], [0.65, 0.9]],
        ]
    )
    s, labels, keep, img = batched_filter_scores_and_topk(scores, 0.25, 3)
    # hand-computed: image 0 (0.9, p0 c0), (0.7, p2 c1), (0.5, p1 c0); image 1 nothing;
    # image 2 (0.9, p2 c1), (0.65, p2 c0), (0.6, p0 c1)
    assert img.tolist() == [0, 0, 0, 2, 2, 2]
    assert keep.tolist() == [0, 2, 1, 2, 2, 0]
    assert labels.tolist() == [0, 1, 0, 1, 0, 1]
    torch.testing.assert_close(s, torch.tensor([0.9, 0.7, 0.5, 0.9, 0.65, 0.6]))
    for i in range(3):
        ref = filter_scores_and_topk(scores[i], 0.25, 3)
        assert torch.equal(s[img == i], ref[0])
        assert torch.equal(labels[img == i], ref[1])
        assert torch.equal(keep[img == i], ref[2])


@pytest.mark.parametrize('nms_extra', [{}, dict(class_agnostic=True), dict(max_num=4)])
def test_rotated_yolox_batch_equals_per_image(nms_extra):
    from tests.yolo_world_infer_helpers import yolox_config

    torch.manual_seed(0)  # the same weights whatever ran before
    model = MODELS.build(yolox_config(64).model)
    boxes, scores = _decoded(model, 64)
    scores, thr = _with_ties(scores, 0.6)
    head = model.bbox_head
    nms = dict(type='nms_rotated', iou_threshold=0.1, **nms_extra)
    cfg = dict(score_thr=thr, nms=nms, max_per_img=20)
    # one rotated NMS call for the 3 images
    assert head._nms_over_batch_applies(head.select_candidates_batch(boxes, scores, cfg), cfg)
    assert assert_same_results(head, boxes, scores, cfg, METAS)[1] >= (12 if nms_extra else 30)
    # predict_by_feat (decode + postprocess_batch) gives the same as image by image too
    model.eval()
    with torch.no_grad():
        outs = model(_images(64), None, 'tensor')
        cfg_nothr = dict(cfg, score_thr=0.0)
        preds = head.predict_by_feat(*outs, batch_img_metas=METAS, cfg=cfg_nothr, rescale=True)
        b, s = head.decode_by_feat(*outs)
    for i, pred in enumerate(preds):
        single = head.postprocess_decoded(b[i], s[i], METAS[i], cfg_nothr, True)
        assert torch.equal(pred.bboxes.tensor, single.bboxes.tensor)
        assert torch.equal(pred.labels, single.labels)


@pytest.mark.parametrize('multi_label', [True, False])
def test_yolo_world_batch_equals_per_image(tiny_clip_dir, multi_label):
    from tests.yolo_world_infer_helpers import world_config

    torch.manual_seed(0)  # the same weights whatever ran before
    model = MODELS.build(world_config(tiny_clip_dir).model)
    model.reparameterize(['cat', 'dog', 'car', 'tree'])
    boxes, scores = _decoded(model, 64)
    assert scores.shape[-1] == 4
    scores, _ = _with_ties(scores, 0.3)
    thr = float(scores.flatten().quantile(0.5))  # about half of the (prior, text) pairs pass
    cfg = dict(
        multi_label=multi_label,
        nms_pre=25,  # fewer than pass the threshold: the per-image top-k is tested
        score_thr=thr,
        nms=dict(type='nms', iou_threshold=0.7),
        max_per_img=15,
    )
    assert (scores > thr).sum((1, 2)).min() > 25
    assert assert_same_results(model.bbox_head, boxes, scores, cfg, METAS)[1] > 10


def test_rotated_yolo_world_batch_equals_per_image(tiny_clip_dir, tmp_path):
    from tests.yolo_world_infer_helpers import rotated_world_config

    torch.manual_seed(0)  # the same weights whatever ran before
    model = MODELS.build(rotated_world_config(tiny_clip_dir, tmp_path).model)
    model.reparameterize(['plane', 'ship', 'storage tank'])
    boxes, scores = _decoded(model, 96)
    assert boxes.size(-1) == 5
    scores, thr = _with_ties(scores, 0.7)
    cfg = copy.deepcopy(dict(model.bbox_head.test_cfg))
    cfg.update(score_thr=thr, nms_pre=60, max_per_img=30)
    assert cfg['nms']['type'] == 'nms_rotated'
    cfg['nms'] = dict(cfg['nms'], iou_threshold=0.5)
    num_candidates, num_kept = assert_same_results(model.bbox_head, boxes, scores, cfg, METAS)
    # an untrained model's boxes are large and overlap: few survive NMS
    assert num_candidates > 30 and num_kept >= 5


def test_metas_that_do_not_match_the_batch_are_refused():
    from tests.yolo_world_infer_helpers import yolox_config

    torch.manual_seed(0)
    head = MODELS.build(yolox_config(64).model).bbox_head
    boxes, scores = torch.rand(3, 10, 5), torch.rand(3, 10, 2)
    with pytest.raises(ValueError, match=r'\(3, 10, 5\).*2 image metas do not match'):
        head.postprocess_batch(boxes, scores, METAS[:2], head.test_cfg, True)
    with pytest.raises(ValueError, match='rescale needs batch_img_metas'):
        head.postprocess_batch(boxes, scores, None, head.test_cfg, True)
