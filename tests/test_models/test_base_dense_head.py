"""BaseDenseHead: level flattening order, priors, and post-processing on box objects."""

import pytest
import torch
from mmengine.structures import InstanceData

from ai4rs.models.dense_heads.base_dense_head import BaseDenseHead
from ai4rs.models.task_modules.prior_generators import MlvlPointGenerator
from ai4rs.structures.bbox import HorizontalBoxes, RotatedBoxes


class _Head(BaseDenseHead):
    """A head whose one output level holds, per cell, a box (4 channels) and K scores:
    decoding is a reshape, so the contract's flow can be checked by hand."""

    box_type = HorizontalBoxes
    clip_to_image = True

    def __init__(self, test_cfg=None):
        super().__init__()
        self.prior_generator = MlvlPointGenerator([8, 16], offset=0.5)
        self.test_cfg = test_cfg

    def forward(self, x):
        return (x,)

    def loss_by_feat(self, maps, batch_gt_instances, batch_img_metas, ignores):
        return dict(n=torch.tensor(float(sum(len(g) for g in batch_gt_instances))))

    def decode_by_feat(self, maps):
        flat = self.flatten_levels(maps, maps[0].size(1))
        return flat[..., :4], flat[..., 4:]

    def select_candidates(self, boxes, scores, cfg):
        best, labels = scores.max(1)
        keep = best > cfg['score_thr']
        return InstanceData(
            bboxes=HorizontalBoxes(boxes[keep]), scores=best[keep], labels=labels[keep]
        )


def test_flatten_levels_is_level_then_row_major():
    a = torch.arange(2 * 3 * 2 * 2, dtype=torch.float).view(2, 3, 2, 2)
    b = torch.arange(2 * 3 * 1 * 1, dtype=torch.float).view(2, 3, 1, 1) + 100
    flat = BaseDenseHead.flatten_levels([a, b], 3)
    assert flat.shape == (2, 5, 3)
    # image 1, level 0, position (y=1, x=0) -> row 2; its channels are a[1, :, 1, 0]
    assert flat[1, 2].tolist() == a[1, :, 1, 0].tolist()
    assert flat[0, 4].tolist() == b[0, :, 0, 0].tolist()


def test_flat_priors_match_cell_centres_and_are_float32_under_half():
    head = _Head()
    maps = [
        torch.zeros(1, 1, 2, 3, dtype=torch.bfloat16),
        torch.zeros(1, 1, 1, 2, dtype=torch.bfloat16),
    ]
    priors = head.flat_priors(maps)
    assert priors.dtype == torch.float32 and priors.shape == (6 + 2, 4)
    # level 0, row 1, col 2: centre (2.5 * 8, 1.5 * 8), stride 8
    assert priors[5].tolist() == [20.0, 12.0, 8.0, 8.0]
    assert priors[7].tolist() == [24.0, 8.0, 16.0, 16.0]


def test_post_process_hboxes_letterbox_rescale_nms_and_cap():
    head = _Head()
    boxes = HorizontalBoxes(
        torch.tensor(
            [
                [14.0, 13.0, 34.0, 23.0],
                [14.0, 13.0, 34.0, 24.0],
                [50.0, 50.0, 60.0, 70.0],
                [14.0, 13.0, 34.0, 23.0],
            ]
        )
    )
    results = InstanceData(
        bboxes=boxes, scores=torch.tensor([0.9, 0.8, 0.7, 0.6]), labels=torch.tensor([0, 0, 1, 1])
    )
    meta = dict(scale_factor=(2.0, 0.5), pad_param=[3.0, 3.0, 4.0, 4.0])
    cfg = dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=2)
    out = head._bbox_post_process(results, cfg, rescale=True, with_nms=True, img_meta=meta)
    # NMS drops the second box (same class, IoU > 0.5), keeps label 1's two boxes; the cap
    # keeps the two best: scores 0.9 and 0.7
    assert out.scores.tolist() == pytest.approx([0.9, 0.7])
    assert isinstance(out.bboxes, HorizontalBoxes)
    expected = torch.tensor(
        [
            [(14 - 4) / 2, (13 - 3) / 0.5, (34 - 4) / 2, (23 - 3) / 0.5],
            [(50 - 4) / 2, (50 - 3) / 0.5, (60 - 4) / 2, (70 - 3) / 0.5],
        ]
    )
    torch.testing.assert_close(out.bboxes.tensor, expected)


def test_post_process_min_bbox_size_and_type_checks():
    head = _Head()
    boxes = RotatedBoxes(torch.tensor([[10.0, 10.0, 4.0, 1.0, 0.0], [30.0, 30.0, 6.0, 5.0, 0.3]]))
    results = InstanceData(
        bboxes=boxes, scores=torch.tensor([0.9, 0.8]), labels=torch.tensor([0, 0])
    )
    out = head._bbox_post_process(results, dict(min_bbox_size=2), with_nms=False)
    assert out.scores.tolist() == pytest.approx([0.8])
    raw = InstanceData(bboxes=torch.zeros(1, 5), scores=torch.ones(1), labels=torch.zeros(1))
    with pytest.raises(TypeError, match='box objects'):
        head._bbox_post_process(raw, dict(), with_nms=False)
    with pytest.raises(ValueError, match='test_cfg.nms'):
        head._bbox_post_process(results, dict(), with_nms=True)


def _cells(rows):
    """(B, 2 cells, 6) rows of (x1, y1, x2, y2, score0, score1) -> one (B, 6, 1, 2) level."""
    return [torch.tensor(rows, dtype=torch.float).permute(0, 2, 1).reshape(len(rows), 6, 1, 2)]


def test_loss_and_predict_flow_unpack_samples():
    from ai4rs.structures import DetDataSample

    cfg = dict(score_thr=0.5, nms=dict(type='nms', iou_threshold=0.5))
    head = _Head(test_cfg=cfg)
    s = DetDataSample(metainfo=dict(img_shape=(8, 8), ori_shape=(20, 30), scale_factor=(2.0, 2.0)))
    s.gt_instances = InstanceData(bboxes=torch.zeros(3, 4), labels=torch.zeros(3).long())
    assert head.loss([torch.zeros(1, 1, 1, 1)], [s])['n'].item() == 3
    maps = _cells([[[2, 4, 80, 10, 0.9, 0.1], [0, 0, 4, 4, 0.2, 0.3]]])
    (pred,) = head.predict(maps, [s], rescale=True)
    # cell 0: label 0, 0.9, box / 2 then clipped to 30 x 20; cell 1 under the threshold
    assert pred.labels.tolist() == [0] and pred.scores.tolist() == pytest.approx([0.9])
    assert pred.bboxes.tensor.tolist() == [[1.0, 2.0, 30.0, 5.0]]


def test_predict_by_feat_is_decode_then_postprocess_per_image():
    """The inference contract: predict_by_feat equals decode_by_feat followed by
    postprocess_decoded on each image's rows (what an exported graph's outputs go through),
    and finish_detections clips only when the head says so."""
    cfg = dict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5), max_per_img=5)
    head = _Head(test_cfg=cfg)
    maps = _cells(
        [
            [[0, 0, 10, 10, 0.9, 0.1], [1, 1, 11, 11, 0.8, 0.7]],
            [[5, 5, 50, 50, 0.1, 0.6], [0, 0, 1, 1, 0.01, 0.02]],
        ]
    )
    metas = [dict(scale_factor=(1.0, 1.0), ori_shape=(40, 40)) for _ in range(2)]
    preds = head.predict_by_feat(*[maps], batch_img_metas=metas, rescale=True)
    boxes, scores = head.decode_by_feat(maps)
    assert boxes.shape == (2, 2, 4) and scores.shape == (2, 2, 2)
    for i, pred in enumerate(preds):
        again = head.postprocess_decoded(boxes[i], scores[i], metas[i])
        assert pred.bboxes.tensor.tolist() == again.bboxes.tensor.tolist()
        assert pred.scores.tolist() == again.scores.tolist()
    # image 0: the two boxes overlap (IoU 81 / 119 > 0.5), same label 0: NMS keeps 0.9
    assert preds[0].scores.tolist() == pytest.approx([0.9])
    # image 1: the second cell is under the threshold; the first is clipped to 40 x 40
    assert preds[1].labels.tolist() == [1]
    assert preds[1].bboxes.tensor.tolist() == [[5.0, 5.0, 40.0, 40.0]]
    head.clip_to_image = False
    unclipped = head.predict_by_feat(maps, batch_img_metas=metas, rescale=True)
    assert unclipped[1].bboxes.tensor.tolist() == [[5.0, 5.0, 50.0, 50.0]]
    with pytest.raises(ValueError, match='batch_img_metas'):
        head.predict_by_feat(maps, rescale=True)
