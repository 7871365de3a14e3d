"""BaseDenseHead: level flattening order, priors, and post-processing on box objects."""

import pytest
import torch
from mmengine.structures import InstanceData

from ai4rs.models.dense_heads.base_dense_head import BaseDenseHead
from ai4rs.models.task_modules.prior_generators import MlvlPointGenerator
from ai4rs.structures.bbox import HorizontalBoxes, RotatedBoxes


class _Head(BaseDenseHead):
    def __init__(self):
        super().__init__()
        self.prior_generator = MlvlPointGenerator([8, 16], offset=0.5)

    def forward(self, x):
        return (x,)

    def loss_by_feat(self, maps, batch_gt_instances, batch_img_metas, ignores):
        return dict(n=torch.tensor(float(sum(len(g) for g in batch_gt_instances))))

    def predict_by_feat(self, maps, batch_img_metas=None, rescale=False):
        return [InstanceData(metainfo=m) for m in batch_img_metas]


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


def test_loss_and_predict_flow_unpack_samples():
    from ai4rs.structures import DetDataSample

    head = _Head()
    s = DetDataSample(metainfo=dict(img_shape=(8, 8)))
    s.gt_instances = InstanceData(bboxes=torch.zeros(3, 4), labels=torch.zeros(3).long())
    assert head.loss([torch.zeros(1, 1, 1, 1)], [s])['n'].item() == 3
    assert head.predict([torch.zeros(1, 1, 1, 1)], [s])[0].img_shape == (8, 8)
