"""Precision-recall curves of DOTAMetric and CocoMetric: the curves the metrics computed their
AP from, drawn to a PNG whose lines give back the metric's AP by the metric's own rule."""

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from ai4rs.evaluation import CocoMetric, DOTAMetric
from ai4rs.evaluation.functional import (
    COCO_RECALL_THRS,
    classwise_ap,
    coco_iou_index,
    coco_pr_curves,
    curve_ap,
)
from ai4rs.structures.bbox import HorizontalBoxes
from ai4rs.visualization.pr_curves import draw_pr_curves, plot_pr_curves

CLASSES = ('plane', 'ship', 'harbor')


def _dota_sample():
    """plane: 2 GT, detections TP (0.9), FP (0.8), TP (0.7); ship: 1 GT and 1 FP elsewhere;
    harbor: nothing."""
    gt = [[50, 50, 20, 10, 0.0], [150, 150, 30, 12, 0.3], [100, 20, 10, 10, 0.0]]
    pred = [
        [50, 50, 20, 10, 0.0],
        [220, 30, 10, 10, 0.0],
        [150, 150, 30, 12, 0.3],
        [20, 200, 10, 10, 0.0],
    ]
    return dict(
        img_id='a',
        pred_instances=dict(
            bboxes=torch.tensor(pred),
            scores=torch.tensor([0.9, 0.8, 0.7, 0.6]),
            labels=torch.tensor([0, 0, 0, 1]),
        ),
        gt_instances=dict(bboxes=torch.tensor(gt), labels=torch.tensor([0, 0, 1])),
    )


def _run(metric, samples, classes=CLASSES):
    metric.dataset_meta = dict(classes=classes)
    metric.process({}, samples)
    return metric.evaluate(len(samples))


def _png_pixels(path):
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert('RGB'))


@pytest.mark.parametrize(
    'eval_mode, plane_ap', [('area', 5 / 6), ('11points', (6 + 5 * 2 / 3) / 11)]
)
def test_dota_curves_are_the_metric_arrays_and_give_its_ap(eval_mode, plane_ap):
    metric = DOTAMetric(eval_mode=eval_mode)
    res = _run(metric, [_dota_sample()])
    curves = metric.pr_curves[0.5]
    assert [c.name for c in curves] == list(CLASSES)
    plane, ship, harbor = curves
    # by hand: recall 1/2, 1/2, 2/2; precision 1/1, 1/2, 2/3
    np.testing.assert_allclose(plane.recall, [0.5, 0.5, 1.0])
    np.testing.assert_allclose(plane.precision, [1.0, 0.5, 2 / 3])
    assert plane.ap == pytest.approx(plane_ap, abs=1e-9)
    np.testing.assert_allclose(ship.recall, [0.0])
    assert ship.ap == 0.0 and ship.num_gts == 1
    assert harbor.num_gts == 0 and harbor.recall.size == 0
    # the metric's mAP (mmrotate mode: classes with GT) is the mean of the curves' APs
    assert res['dota/AP50'] == pytest.approx((plane_ap + 0.0) / 2, abs=1e-9)
    for c in curves:
        assert curve_ap(c.recall, c.precision, c.rule) == pytest.approx(c.ap, abs=1e-12)


def test_dota_curve_drawn_lines_give_back_the_ap_and_png_is_written(tmp_path):
    metric = DOTAMetric(eval_mode='area')
    _run(metric, [_dota_sample()])
    curves = metric.pr_curves[0.5]
    fig = Figure()
    ax = fig.add_subplot(1, 1, 1)
    lines = draw_pr_curves(ax, curves, 'DOTA')
    # the drawn points are the metric's arrays (not a smoothed copy)
    np.testing.assert_array_equal(lines[0].get_xdata(), curves[0].recall)
    np.testing.assert_array_equal(lines[0].get_ydata(), curves[0].precision)
    plotted = curve_ap(lines[0].get_xdata(), lines[0].get_ydata(), 'area')
    assert plotted == pytest.approx(5 / 6, abs=1e-9)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ['plane (AP 0.833)', 'ship (AP 0.000)', 'harbor (AP 0.000)']
    out = plot_pr_curves(curves, str(tmp_path / 'sub' / 'pr.png'), title='DOTA')
    pixels = _png_pixels(out)
    assert pixels.shape == (480, 640, 3)
    assert (pixels.min(axis=2) < 200).mean() > 0.01  # axes, lines and text, not a blank page
    with pytest.raises(ValueError, match='.png'):
        plot_pr_curves(curves, str(tmp_path / 'pr.jpg'))
    with pytest.raises(ValueError, match='no curves'):
        plot_pr_curves([], str(tmp_path / 'pr.png'))


def _coco_sample():
    """class A: 2 GT, TP (0.9), FP (0.8), TP (0.7); class B: 1 GT, no detection; C: none."""
    instances = [
        dict(bbox=[10, 10, 40, 40], bbox_label=0, ignore_flag=0),
        dict(bbox=[100, 100, 150, 140], bbox_label=0, ignore_flag=0),
        dict(bbox=[60, 160, 90, 190], bbox_label=1, ignore_flag=0),
    ]
    pred = [[10, 10, 40, 40], [200, 10, 230, 40], [100, 100, 150, 140]]
    return dict(
        img_id=1,
        ori_shape=(256, 256),
        instances=instances,
        pred_instances=dict(
            bboxes=HorizontalBoxes(torch.tensor(pred, dtype=torch.float32)),
            scores=torch.tensor([0.9, 0.8, 0.7]),
            labels=torch.tensor([0, 0, 0]),
        ),
    )


def test_coco_curves_are_cocoeval_precision_and_give_its_ap():
    metric = CocoMetric(metric_items=['mAP', 'mAP_50'], classwise=True, backend='pycocotools')
    res = _run(metric, [_coco_sample()], classes=('A', 'B', 'C'))
    assert sorted(metric.pr_curves) == pytest.approx(list(np.linspace(0.5, 0.95, 10)))
    a, b, c = metric.pr_curves[0.5]
    np.testing.assert_array_equal(a.recall, np.linspace(0, 1, 101))
    # interpolated precision by hand: 1 up to recall 0.5, then 2/3
    expected = np.where(COCO_RECALL_THRS <= 0.5 + 1e-12, 1.0, 2 / 3)
    np.testing.assert_allclose(a.precision, expected, atol=1e-12)
    assert a.ap == pytest.approx((51 + 50 * 2 / 3) / 101, abs=1e-12)
    assert b.ap == 0.0 and np.isnan(c.ap)
    # the metric's own numbers: mAP_50 = mean over categories with GT; classwise (all IoUs
    # give the same curve: the true positives are exact)
    assert res['coco/bbox_mAP_50'] == pytest.approx((a.ap + b.ap) / 2, abs=1e-3)
    assert res['coco/A_precision'] == pytest.approx(a.ap, abs=1e-9)
    fig = Figure()
    lines = draw_pr_curves(fig.add_subplot(1, 1, 1), [a, b, c])
    assert curve_ap(lines[0].get_xdata(), lines[0].get_ydata(), 'coco101') == pytest.approx(a.ap)
    assert lines[2].get_xdata().tolist() == [0.0]  # no GT: nothing but the origin


def test_coco_pr_curves_agree_with_classwise_table_on_random_arrays():
    rng = np.random.default_rng(0)
    precision = rng.uniform(0, 1, size=(10, 101, 4, 4, 3))
    precision[:, :, 2] = -1  # a category without ground truth
    iou_thrs = np.linspace(0.5, 0.95, 10)
    table = classwise_ap(precision, iou_thrs)
    for col, thr in ((1, 0.5), (2, 0.75)):
        curves = coco_pr_curves(precision, iou_thrs, list('abcd'), thr)
        np.testing.assert_allclose([cv.ap for cv in curves], table[:, col], equal_nan=True)
    with pytest.raises(ValueError, match='was not evaluated'):
        coco_iou_index(iou_thrs, 0.52)
    with pytest.raises(ValueError, match='rule must be'):
        curve_ap([0.5], [1.0], 'voc')
