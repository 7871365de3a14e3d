"""The confusion matrix's counting on hand-made images, with counts worked out by hand."""

import math

import numpy as np
import pytest
import torch

from ai4rs.evaluation.functional.confusion_matrix import (
    box_ious,
    calculate_confusion_matrix,
    typed_predictions,
)
from ai4rs.structures.bbox import HorizontalBoxes, QuadriBoxes, RotatedBoxes

Q = math.pi / 4


def _sample(gt, gt_labels, dets, scores, labels, ignored=None, box_cls=RotatedBoxes):
    dim = box_cls.box_dim
    ign = ignored or []
    return dict(
        img_path='x.png',
        gt_instances=dict(
            bboxes=box_cls(torch.tensor(gt, dtype=torch.float32).reshape(-1, dim)),
            labels=torch.tensor(gt_labels, dtype=torch.int64),
        ),
        ignored_instances=dict(
            bboxes=box_cls(torch.tensor([b for b, _ in ign], dtype=torch.float32).reshape(-1, dim)),
            labels=torch.tensor([c for _, c in ign], dtype=torch.int64),
        ),
        # raw tensors, as tools/test.py --out saves them
        pred_instances=dict(
            bboxes=torch.tensor(dets, dtype=torch.float32).reshape(-1, dim),
            scores=torch.tensor(scores, dtype=torch.float32),
            labels=torch.tensor(labels, dtype=torch.int64),
        ),
    )


def _rotated_case():
    img1 = _sample(
        gt=[[50, 50, 40, 10, 0], [150, 50, 20, 20, 0], [50, 150, 60, 6, Q]],
        gt_labels=[0, 1, 2],
        dets=[
            [50, 50, 40, 10, 0],  # class 0 on the class-0 object: TP
            [150, 50, 20, 20, 0],  # class 0 on the class-1 object: wrong class
            [50, 150, 60, 6, -Q],  # class 2 crossing the class-2 object: same horizontal
            # box (horizontal IoU 1), rotated IoU 0.05: a false positive
            [250, 250, 20, 20, 0],  # class 1 on nothing: background
            [50, 50, 40, 10, 0],  # class 0, score below 0.3: not counted
        ],
        scores=[0.9, 0.8, 0.7, 0.6, 0.1],
        labels=[0, 0, 2, 1, 0],
    )
    img2 = _sample(
        gt=[[100, 100, 30, 30, 0], [200, 200, 30, 30, 0]],
        gt_labels=[1, 2],
        dets=[[101, 100, 30, 30, 0], [300, 300, 20, 20, 0]],
        scores=[0.5, 0.9],
        labels=[1, 0],
        # an ignored (difficult) class-0 object under the second detection
        ignored=[([300, 300, 20, 20, 0], 0)],
    )
    return [img1, img2]


def test_rotated_hand_count():
    matrix = calculate_confusion_matrix(_rotated_case(), 3, score_thr=0.3, tp_iou_thr=0.5)
    expected = np.array(
        [
            # pred: 0  1  2  background
            [1, 0, 0, 0],  # GT 0: found
            [1, 1, 0, 1],  # GT 1: once taken for class 0 (and so missed there), once found
            [0, 0, 0, 2],  # GT 2: the crossing box does not find it; image 2's is missed
            [0, 1, 1, 0],  # background: the class-1 box on nothing, the crossing class-2 box
        ]
    )
    np.testing.assert_array_equal(matrix, expected)
    assert matrix.dtype == np.int64


def test_the_crossing_pair_is_what_rotated_iou_tells_apart():
    gt = RotatedBoxes(torch.tensor([[50.0, 150, 60, 6, Q]]))
    det = RotatedBoxes(torch.tensor([[50.0, 150, 60, 6, -Q]]))
    # the same axis-aligned hull, but the thin boxes only share a 6 x 6 square
    hull_iou = box_ious(HorizontalBoxes(det.convert_to('hbox').tensor), gt.convert_to('hbox'))
    assert hull_iou.item() == pytest.approx(1.0, abs=1e-4)
    assert box_ious(det, gt).item() == pytest.approx(36 / (2 * 360 - 36), abs=1e-4)


def test_score_threshold_and_nms():
    img = _sample(
        gt=[[50, 50, 40, 10, 0]],
        gt_labels=[0],
        dets=[[50, 50, 40, 10, 0], [51, 50, 40, 10, 0]],
        scores=[0.9, 0.8],
        labels=[0, 0],
    )
    # both duplicates count in (0, 0) (mmdet's rule), NMS keeps one
    assert calculate_confusion_matrix([img], 1)[0, 0] == 2
    assert calculate_confusion_matrix([img], 1, nms_iou_thr=0.5)[0, 0] == 1
    # above every score: nothing counted but the missed object
    np.testing.assert_array_equal(
        calculate_confusion_matrix([img], 1, score_thr=0.95), [[0, 1], [0, 0]]
    )


def test_horizontal_and_quadrilateral_ground_truth():
    img = _sample(
        gt=[[0, 0, 10, 10], [20, 20, 30, 30]],
        gt_labels=[0, 1],
        # IoU 0.9 with the class-0 box but predicted as class 1; IoU 25/175 with the other
        dets=[[0, 0, 10, 9], [25, 25, 35, 35]],
        scores=[0.9, 0.9],
        labels=[1, 1],
        box_cls=HorizontalBoxes,
    )
    np.testing.assert_array_equal(
        calculate_confusion_matrix([img], 2), [[0, 1, 1], [0, 0, 1], [0, 1, 0]]
    )
    # DOTA polygons: a 40 x 10 rectangle at 45 degrees, matched as a rotated box
    c, s = math.cos(Q), math.sin(Q)
    corners = [
        (50 + dx * c - dy * s, 50 + dx * s + dy * c)
        for dx, dy in ((-20, -5), (20, -5), (20, 5), (-20, 5))
    ]
    quad = dict(
        bboxes=QuadriBoxes(torch.tensor([sum(corners, ())], dtype=torch.float32)),
        labels=torch.tensor([0]),
    )
    preds = dict(
        bboxes=torch.tensor([[50, 50, 40, 10, Q], [50, 50, 40, 10, -Q]]),
        scores=torch.tensor([0.9, 0.8]),
        labels=torch.tensor([0, 0]),
    )
    matrix = calculate_confusion_matrix([dict(gt_instances=quad, pred_instances=preds)], 1)
    np.testing.assert_array_equal(matrix, [[1, 0], [1, 0]])


def test_bad_input_is_named():
    img = _rotated_case()[0]
    with pytest.raises(ValueError, match=r'shape \(5, 4\).*RotatedBoxes'):
        typed_predictions(torch.zeros(5, 4), img['gt_instances']['bboxes'], 'image 0')
    with pytest.raises(ValueError, match=r'image 0 \(x.png\): ground truth label 2 outside the 2'):
        calculate_confusion_matrix([img], 2)
    with pytest.raises(ValueError, match='tp_iou_thr'):
        calculate_confusion_matrix([img], 3, tp_iou_thr=0)
