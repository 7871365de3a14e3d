"""The visualizer draws box objects, converted by their own type; raw tensors are refused."""

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

from ai4rs.structures import DetDataSample
from ai4rs.structures.bbox import QuadriBoxes, RotatedBoxes
from ai4rs.visualization import DetLocalVisualizer

RBOXES = torch.tensor([[20.0, 16.0, 18.0, 8.0, 0.4], [40.0, 30.0, 10.0, 6.0, -1.0]])


def _draw(vis, bboxes):
    image = np.zeros((48, 64, 3), np.uint8)
    instances = InstanceData(bboxes=bboxes, labels=torch.tensor([0, 1]))
    return vis.draw_instances(image, instances, classes=['a', 'b'])


def test_rbox_and_its_qbox_draw_the_same_and_tensors_are_refused():
    vis = DetLocalVisualizer(name='test_local_visualizer_boxes', bbox_color=(255, 0, 0))
    drawn_r = _draw(vis, RotatedBoxes(RBOXES))
    drawn_q = _draw(vis, RotatedBoxes(RBOXES).convert_to('qbox'))
    assert isinstance(RotatedBoxes(RBOXES).convert_to('qbox'), QuadriBoxes)
    assert drawn_r.any() and np.array_equal(drawn_r, drawn_q)
    # the box outline passes near the corners of the first box, not through the far corner
    corner = RotatedBoxes(RBOXES).convert_to('qbox').tensor[0, :2].round().long().tolist()
    assert drawn_r[corner[1] - 1 : corner[1] + 2, corner[0] - 1 : corner[0] + 2, 0].max() > 0
    assert drawn_r[47, 63].max() == 0
    with pytest.raises(TypeError, match='boxes_from_tensor'):
        _draw(vis, RBOXES)


def test_add_datasample_skips_raw_tensor_ground_truth():
    vis = DetLocalVisualizer(name='test_local_visualizer_sample')
    sample = DetDataSample(metainfo=dict(img_shape=(48, 64)))
    sample.gt_instances = InstanceData(bboxes=RBOXES.clone(), labels=torch.tensor([0, 1]))
    sample.pred_instances = InstanceData(
        bboxes=RotatedBoxes(RBOXES), labels=torch.tensor([0, 1]), scores=torch.tensor([0.9, 0.8])
    )
    out = vis.add_datasample('x', np.zeros((48, 64, 3), np.uint8), sample, out_file=None)
    assert out.shape == (48, 64, 3)  # only the predictions were drawn
    sample.gt_instances.bboxes = RotatedBoxes(RBOXES)
    assert vis.add_datasample('x', np.zeros((48, 64, 3), np.uint8), sample).shape == (48, 128, 3)
