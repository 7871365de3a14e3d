"""Per-image mAP (analyze_results.py): hand-made cases for DOTAMetric and CocoMetric, the
mmdet ranking and file names, and the GT | prediction drawing."""

import numpy as np
import pytest
import torch

from ai4rs.evaluation import CocoMetric, DOTAMetric
from ai4rs.evaluation.analysis import per_image_ap, rank_images, ranked_file_name
from ai4rs.structures.bbox import RotatedBoxes
from ai4rs.visualization import DetLocalVisualizer
from ai4rs.visualization.result_images import draw_gt_and_predictions

CLASSES = ('plane', 'ship')
GT = [[50, 50, 20, 10, 0.0], [150, 150, 30, 12, 0.3]]


def _dota(img_id, pred, scores, gt, gt_labels):
    return dict(
        img_id=img_id,
        pred_instances=dict(
            bboxes=torch.tensor(pred, dtype=torch.float32).reshape(-1, 5),
            scores=torch.tensor(scores, dtype=torch.float32),
            labels=torch.zeros(len(scores), dtype=torch.int64),
        ),
        gt_instances=dict(
            bboxes=RotatedBoxes(torch.tensor(gt, dtype=torch.float32).reshape(-1, 5)),
            labels=torch.tensor(gt_labels, dtype=torch.int64),
        ),
    )


def _dota_samples():
    return [
        _dota('miss', GT[:1], [0.9], GT, [0, 0]),  # one of two planes found
        _dota('perfect', GT, [0.9, 0.8], GT, [0, 0]),
        _dota('no_gt', GT[:1], [0.9], [], []),  # a detection where there is nothing
    ]


@pytest.mark.parametrize('eval_mode, miss_ap', [('11points', 6 / 11), ('area', 0.5)])
def test_dota_per_image_ap_by_hand_and_equal_to_the_metric_on_each_image(eval_mode, miss_ap):
    metric = DOTAMetric(eval_mode=eval_mode)
    metric.dataset_meta = dict(classes=CLASSES)
    samples = _dota_samples()
    aps = per_image_ap(metric, samples)
    # recall 1/2 at precision 1: 11 points -> 6 of 11 thresholds reached; area -> 0.5
    np.testing.assert_allclose(aps, [miss_ap, 1.0, 0.0], atol=1e-12)
    for sample, ap in zip(samples, aps):
        alone = DOTAMetric(eval_mode=eval_mode)
        alone.dataset_meta = dict(classes=CLASSES)
        alone.process({}, [sample])
        assert alone.evaluate(1)['dota/mAP'] == pytest.approx(ap, abs=1e-12)
    good, bad = rank_images(aps, topk=2)
    assert good == [1, 0] and bad == [2, 0]


def test_dota_per_image_ap_is_the_mean_over_the_metric_thresholds():
    # IoU of the detection below with the first ground truth: 20x10 vs 20x8 inside -> 0.8
    sample = _dota('a', [[50, 49, 20, 8, 0.0]], [0.9], GT[:1], [0])
    metric = DOTAMetric(iou_thrs=[0.5, 0.75, 0.85])
    metric.dataset_meta = dict(classes=CLASSES)
    assert per_image_ap(metric, [sample])[0] == pytest.approx(2 / 3, abs=1e-6)


def _coco(img_id, pred, gt):
    return dict(
        img_id=img_id,
        ori_shape=(200, 200),
        instances=[dict(bbox=b, bbox_label=0, ignore_flag=0) for b in gt],
        pred_instances=dict(
            bboxes=torch.tensor(pred, dtype=torch.float32).reshape(-1, 4),
            scores=torch.linspace(0.9, 0.5, len(pred)),
            labels=torch.zeros(len(pred), dtype=torch.int64),
        ),
    )


def test_coco_per_image_ap_by_hand_and_equal_to_the_metric_on_each_image():
    boxes = [[10, 10, 50, 50], [100, 100, 160, 150]]
    samples = [_coco(1, boxes, boxes), _coco(2, boxes[:1], boxes), _coco(3, boxes[:1], [])]
    # IoU 40 x 24.8 / 40 x 40 = 0.62: a match at IoU 0.5, 0.55 and 0.6 only
    samples.append(_coco(4, [[10, 10, 50, 34.8]], boxes[:1]))
    metric = CocoMetric(backend='pycocotools')
    metric.dataset_meta = dict(classes=CLASSES)
    aps = per_image_ap(metric, samples)
    # recall 1/2 at precision 1 at every IoU: 51 of the 101 recall points have precision 1;
    # no ground truth: -1 (pycocotools); AP 1 at 3 of the 10 IoU thresholds: 0.3
    np.testing.assert_allclose(aps, [1.0, 51 / 101, -1.0, 0.3], atol=1e-12)
    for sample, ap in zip(samples[:2] + samples[3:], aps[:2].tolist() + aps[3:].tolist()):
        alone = CocoMetric(backend='pycocotools')
        alone.dataset_meta = dict(classes=CLASSES)
        alone.process({}, [sample])
        assert alone.evaluate(1)['coco/bbox_mAP'] == pytest.approx(ap, abs=1e-3)
    good, bad = rank_images(aps, topk=1)
    assert good == [0] and bad == [2]


def test_ranked_file_names_and_bad_topk():
    assert ranked_file_name('data/val/images/P0003__1024__0___0.png', 0.85714) == (
        'P0003__1024__0___0_0.857.png'
    )
    assert ranked_file_name('a/b.jpg', 1.0) == 'b_1.0.jpg'
    with pytest.raises(ValueError, match='topk'):
        rank_images([0.5], 0)


def test_drawing_is_gt_left_predictions_right_at_image_size(tmp_path):
    from PIL import Image

    h, w = 120, 200
    image = np.full((h, w, 3), 90, dtype=np.uint8)
    sample = _dota('x', [[150, 60, 40, 20, 0.4]], [0.8], [[50, 60, 40, 20, 0.0]], [0])
    visualizer = DetLocalVisualizer.get_instance('test_analyze_results_drawing')
    visualizer.dataset_meta = dict(classes=CLASSES, palette=[(255, 0, 0), (0, 0, 255)])
    out = tmp_path / 'good' / 'x_1.0.png'
    draw_gt_and_predictions(visualizer, image, sample, 'rbox', str(out), score_thr=0.5)
    with Image.open(out) as im:
        drawn = np.asarray(im.convert('RGB'))
    assert drawn.shape == (h, 2 * w, 3)
    changed = np.abs(drawn.astype(int) - 90).max(axis=2) > 40
    # the ground truth box (centre x=50) on the left, the prediction (x=150) on the right
    assert changed[:, 20:80].any() and changed[:, w + 120 : w + 180].any()
    assert not changed[:, 120:180].any()  # no prediction drawn on the GT side
    # a score threshold above the prediction's score leaves the right half undrawn there
    out2 = tmp_path / 'bad' / 'x_0.0.png'
    draw_gt_and_predictions(visualizer, image, sample, 'rbox', str(out2), score_thr=0.9)
    with Image.open(out2) as im:
        drawn2 = np.asarray(im.convert('RGB'))
    assert not (np.abs(drawn2[:, w:].astype(int) - 90).max(axis=2) > 40).any()


def test_no_ground_truth_at_all_is_an_error_not_all_zero_aps():
    from ai4rs.evaluation.analysis import evaluate_pr_curves

    metric = DOTAMetric()
    metric.dataset_meta = dict(classes=CLASSES)
    empty = [_dota('a', GT[:1], [0.9], [], []), _dota('b', GT[:1], [0.8], [], [])]
    with pytest.raises(ValueError, match='no ground truth'):
        per_image_ap(metric, empty)
    with pytest.raises(ValueError, match='no ground truth'):
        evaluate_pr_curves(metric, empty, 0.5)
    coco = CocoMetric(backend='pycocotools')
    coco.dataset_meta = dict(classes=CLASSES)
    empty = [_coco(1, [[10, 10, 50, 50]], []), _coco(2, [[10, 10, 50, 50]], [])]
    with pytest.raises(ValueError, match='no ground truth'):
        per_image_ap(coco, empty)
    with pytest.raises(ValueError, match='no ground truth'):
        evaluate_pr_curves(coco, empty, 0.5)
