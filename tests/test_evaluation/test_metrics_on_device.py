"""DOTAMetric and CocoMetric receive predictions on the model's device (``device``, see
tests/conftest.py) through mmengine's Evaluator, as in a validation loop on a GPU; the
results are the hand-computed ones."""

import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.structures import InstanceData

from ai4rs.evaluation import CocoMetric, DOTAMetric
from ai4rs.structures import DetDataSample
from ai4rs.structures.bbox import HorizontalBoxes, RotatedBoxes


def _evaluate(metric, samples, classes):
    evaluator = Evaluator(metric)
    evaluator.dataset_meta = dict(classes=classes)
    evaluator.process(data_samples=samples)
    return evaluator.evaluate(len(samples))


def test_dota_metric_takes_device_tensors(device):
    # class 0: two objects, one found; class 1: one object, found, plus a later false
    # positive. mmrotate mode, over the classes with objects: area AP (0.5 + 1.0) / 2,
    # VOC07 11-point AP (6 / 11 + 1.0) / 2.
    gt = torch.tensor(
        [[20.0, 20.0, 10.0, 6.0, 0.3], [60.0, 40.0, 8.0, 12.0, -0.5], [40.0, 70.0, 14.0, 9.0, 1.0]]
    )
    sample = DetDataSample(metainfo=dict(img_id='P0001', img_shape=(96, 96)))
    sample.gt_instances = InstanceData(
        bboxes=RotatedBoxes(gt.to(device)), labels=torch.tensor([0, 0, 1], device=device)
    )
    sample.ignored_instances = InstanceData(
        bboxes=RotatedBoxes(torch.zeros(0, 5, device=device)),
        labels=torch.zeros(0, dtype=torch.long, device=device),
    )
    pred = torch.cat([gt[[0, 2]], torch.tensor([[80.0, 80.0, 6.0, 6.0, 0.0]])]).to(device)
    sample.pred_instances = InstanceData(
        bboxes=RotatedBoxes(pred),
        scores=torch.tensor([0.9, 0.8, 0.3], device=device),
        labels=torch.tensor([0, 1, 1], device=device),
    )
    res = _evaluate(
        DOTAMetric(predict_box_type='rbox', eval_mode='area'), [sample], ('car', 'ship')
    )
    assert res['dota/AP50'] == pytest.approx(0.75)
    res = _evaluate(DOTAMetric(predict_box_type='rbox'), [sample], ('car', 'ship'))
    assert res['dota/AP50'] == pytest.approx((6 / 11 + 1) / 2)


def test_coco_metric_takes_device_tensors(device):
    # class 0: two objects, one found (COCO's 101-point AP: 51 / 101); class 1: found
    instances = [
        dict(bbox=[10.0, 10.0, 40.0, 30.0], bbox_label=0, ignore_flag=0),
        dict(bbox=[50.0, 50.0, 90.0, 80.0], bbox_label=0, ignore_flag=0),
        dict(bbox=[5.0, 60.0, 30.0, 95.0], bbox_label=1, ignore_flag=0),
    ]
    sample = DetDataSample(metainfo=dict(img_id=7, ori_shape=(100, 100)))
    sample.instances = instances
    boxes = torch.tensor([instances[0]['bbox'], instances[2]['bbox']], device=device)
    sample.pred_instances = InstanceData(
        bboxes=HorizontalBoxes(boxes),
        scores=torch.tensor([0.9, 0.7], device=device),
        labels=torch.tensor([0, 1], device=device),
    )
    res = _evaluate(CocoMetric(), [sample], ('cat', 'dog'))
    assert res['coco/bbox_mAP_50'] == pytest.approx((51 / 101 + 1) / 2, abs=1e-4)
