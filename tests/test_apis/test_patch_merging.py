"""Sliced inference's way back to the full image, and the one patch-merging routine."""

import math

import numpy as np
import pytest
import torch

from ai4rs.apis.sliced_inference import patch_boxes_to_image
from ai4rs.evaluation.functional import merge_patch_boxes, polygon_iou
from ai4rs.structures.bbox import HorizontalBoxes, QuadriBoxes, RotatedBoxes

RBOXES = torch.tensor(
    [
        [30.0, 20.0, 24.0, 8.0, 0.5],
        [10.0, 40.0, 6.0, 12.0, -1.2],
        [50.0, 50.0, 10.0, 4.0, 0.0],
        [40.0, 40.0, 24.0, 8.0, 0.3],
    ],
    dtype=torch.float64,
)


def corners(rboxes):
    """(N, 5) -> (N, 4, 2): c+v1+v2, c+v1-v2, c-v1-v2, c-v1+v2, written out independently."""
    cx, cy, w, h, t = rboxes.unbind(-1)
    v1 = torch.stack([w / 2 * torch.cos(t), w / 2 * torch.sin(t)], -1)
    v2 = torch.stack([-h / 2 * torch.sin(t), h / 2 * torch.cos(t)], -1)
    c = torch.stack([cx, cy], -1)
    return torch.stack([c + v1 + v2, c + v1 - v2, c - v1 - v2, c - v1 + v2], dim=1)


@pytest.mark.parametrize('scale', [(2.0, 2.0), (2.0, 0.5), (1 / 0.75, 1 / 1.25)])
def test_patch_boxes_to_image_against_corners(scale):
    origin = (100.0, 36.0)
    boxes = RotatedBoxes(RBOXES)
    out = patch_boxes_to_image(boxes, origin, scale)
    torch.testing.assert_close(boxes.tensor, RBOXES)  # the patch's boxes are left alone
    assert isinstance(out, RotatedBoxes)
    # independent: corners moved by the origin, then scaled per axis
    pts = (corners(RBOXES) + torch.tensor(origin, dtype=torch.float64)) * torch.tensor(
        scale, dtype=torch.float64
    )
    w_edge, h_edge = pts[:, 0] - pts[:, 3], pts[:, 0] - pts[:, 1]
    got = out.tensor
    torch.testing.assert_close(got[:, :2], pts.mean(1))
    torch.testing.assert_close(got[:, 2], w_edge.norm(dim=1))
    torch.testing.assert_close(got[:, 3], h_edge.norm(dim=1))
    # the h edge keeps its direction (-sin t, cos t) up to sign
    t = torch.atan2(-h_edge[:, 0], h_edge[:, 1])
    diff = torch.remainder(got[:, 4] - t + math.pi / 2, math.pi) - math.pi / 2
    torch.testing.assert_close(diff, torch.zeros(len(RBOXES), dtype=torch.float64))
    if scale[0] == scale[1]:
        torch.testing.assert_close(corners(got), pts)
    # the example: w = 24 at t = 0.3, image scaled by (2, 0.5), back by (0.5, 2)
    if scale == (2.0, 0.5):
        back = patch_boxes_to_image(RotatedBoxes(RBOXES[3:]), (0.0, 0.0), (0.5, 2.0))
        assert back.tensor[0, 2].item() == pytest.approx(18.24, abs=0.01)


def _greedy(iou, scores, labels, thr):
    """Reference greedy NMS over a full IoU matrix, class by class."""
    keep = []
    for c in np.unique(labels):
        idx = [i for i in np.argsort(-scores, kind='stable') if labels[i] == c]
        alive = list(idx)
        while alive:
            i = alive.pop(0)
            keep.append(i)
            alive = [j for j in alive if iou[i, j] <= thr]
    return sorted(keep)


@pytest.mark.parametrize('kind', ['rbox', 'hbox', 'qbox'])
def test_merge_patch_boxes_matches_greedy_reference(kind):
    rng = np.random.default_rng(3)
    n = 40
    ctr = rng.uniform(0, 60, (n, 2))
    wh = rng.uniform(4, 20, (n, 2))
    t = rng.uniform(-1.5, 1.5, (n, 1)) if kind != 'hbox' else np.zeros((n, 1))
    rb = torch.from_numpy(np.concatenate([ctr, wh, t], 1))
    scores = rng.uniform(0, 1, n)
    labels = rng.integers(0, 3, n)
    polys = RotatedBoxes(rb).convert_to('qbox').tensor.numpy()
    iou = polygon_iou(polys, polys)
    boxes = {
        'rbox': RotatedBoxes(rb),
        'hbox': RotatedBoxes(rb).convert_to('hbox'),
        'qbox': QuadriBoxes(torch.from_numpy(polys)),
    }[kind]
    keep = merge_patch_boxes(boxes, torch.from_numpy(scores), torch.from_numpy(labels), 0.1)
    assert keep.dtype == torch.int64
    assert sorted(keep.tolist()) == _greedy(iou, scores, labels, 0.1)
    assert isinstance(boxes, (RotatedBoxes, HorizontalBoxes, QuadriBoxes))
    with pytest.raises(TypeError, match='box object'):
        merge_patch_boxes(rb, torch.from_numpy(scores), torch.from_numpy(labels), 0.1)


class _FixedBoxModel:
    """Stands in for a detector: on every patch it predicts the same rotated box, scored by
    the order in which it saw the patches (so each output names its patch). It has the
    part of the model contract sliced inference uses (docs/model_contract.md)."""

    PATCH_BOX = [20.0, 12.0, 16.0, 6.0, 0.3]
    takes_texts = False
    vocabulary = None

    def __init__(self):
        from mmengine.config import Config

        self.cfg = Config(
            dict(
                test_dataloader=dict(
                    dataset=dict(
                        pipeline=[
                            dict(type='LoadImageFromFile'),
                            dict(type='PackDetInputs', meta_keys=('img_id', 'img_shape')),
                        ]
                    )
                )
            )
        )
        self.seen = 0

    def test_step(self, data):
        from mmengine.structures import InstanceData

        out = []
        for sample in data['data_samples']:
            sample.pred_instances = InstanceData(
                bboxes=RotatedBoxes(torch.tensor([self.PATCH_BOX])),
                scores=torch.tensor([1.0 - 0.001 * self.seen]),
                labels=torch.tensor([0]),
            )
            self.seen += 1
            out.append(sample)
        return out


def test_sliced_inference_maps_patch_boxes_back_with_non_uniform_scale():
    """101 x 61 px at ratio 0.5 is resized to 50 x 30 (rounded), a non-uniform (2.02, 2.033)
    way back; every patch's box must land on the independently mapped corners."""
    from mmengine.registry import init_default_scope

    from ai4rs.apis import inference_detector_by_patches
    from ai4rs.datasets.sliding_windows import get_sliding_windows
    from ai4rs.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    init_default_scope('ai4rs')
    img = np.zeros((61, 101, 3), np.uint8)
    result = inference_detector_by_patches(
        _FixedBoxModel(),
        img,
        sizes=(16,),
        steps=(12,),
        ratios=(0.5,),
        merge_iou_thr=1.0,
        progress=False,
    )
    windows = get_sliding_windows(50, 30, [16], [4], img_rate_thr=0.0)
    pred = result.pred_instances
    assert result.ori_shape == (61, 101) and len(pred) == len(windows) >= 4
    order = torch.argsort(pred.scores, descending=True)  # patch order
    scale = torch.tensor([101 / 50, 61 / 30], dtype=torch.float64)
    box = torch.tensor([_FixedBoxModel.PATCH_BOX], dtype=torch.float64)
    for k, window in enumerate(windows):
        got = pred.bboxes.tensor[order[k]].double()
        pts = (corners(box)[0] + torch.tensor(window[:2], dtype=torch.float64)) * scale
        w_edge, h_edge = pts[0] - pts[3], pts[0] - pts[1]
        torch.testing.assert_close(got[:2], pts.mean(0), atol=1e-4, rtol=0)
        torch.testing.assert_close(
            got[2:4], torch.stack([w_edge.norm(), h_edge.norm()]), atol=1e-4, rtol=0
        )
        t = torch.atan2(-h_edge[0], h_edge[1])
        diff = torch.remainder(got[4] - t + math.pi / 2, math.pi) - math.pi / 2
        assert abs(diff.item()) < 1e-5
