"""The ops make every tensor on their inputs' device: run on the CPU with torch's default
device set to 'meta' (what CUDA inputs meet, where the default stays the CPU), any tensor
made without ``device=`` would be a meta tensor and mixing it with the inputs would raise."""

import numpy as np
import torch

from ai4rs.ops import batched_nms, box_iou_rotated, nms_rotated, points_in_rboxes
from tests.test_ops.rbox_shapely_reference import clustered_rboxes


def test_ops_follow_their_inputs_device():
    rng = np.random.default_rng(0)
    boxes, scores = clustered_rboxes(rng, 300, clusters=20)
    b, s = torch.from_numpy(boxes), torch.from_numpy(scores)
    labels = torch.from_numpy(rng.integers(0, 3, 300))
    points = torch.from_numpy(rng.uniform(0, 300, (50, 2)))
    # the references, computed with the ordinary default device
    iou = box_iou_rotated(b, b)
    keep = nms_rotated(b, s, 0.2, labels=labels)[1]
    inside = points_in_rboxes(points, b)
    cfg = dict(type='nms_rotated', iou_threshold=0.2)
    torch.set_default_device('meta')
    try:
        assert torch.equal(box_iou_rotated(b, b), iou)
        assert torch.equal(box_iou_rotated(b, b, aligned=True), torch.diagonal(iou))
        assert torch.equal(nms_rotated(b, s, 0.2, labels=labels)[1], keep)
        assert torch.equal(batched_nms(b, s, labels, cfg)[1], keep)
        assert torch.equal(batched_nms(b, s, labels, dict(cfg, split_thr=1))[1], keep)
        assert torch.equal(points_in_rboxes(points, b), inside)
    finally:
        torch.set_default_device(None)
