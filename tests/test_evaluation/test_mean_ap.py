"""Hand-computed AP cases for eval_rbbox_map in 'mmrotate' and 'devkit' modes.

Boxes are axis-aligned rectangles given as qboxes (exact polygon IoU) or rboxes (rotated
IoU from ai4rs.ops in mmrotate mode), so every IoU below is a simple fraction.
"""

import numpy as np
import pytest

from ai4rs.evaluation import average_precision, eval_rbbox_map, tpfp_default


def q(x, y, w, h):
    """Axis-aligned rectangle as a qbox."""
    return [x, y, x + w, y, x + w, y + h, x, y + h]


def qd(x, y, w, h, score):
    return q(x, y, w, h) + [score]


def ann(boxes, labels, ignore=(), ignore_labels=()):
    return dict(
        bboxes=np.array(boxes, float).reshape(-1, 8),
        labels=np.array(labels, np.int64),
        bboxes_ignore=np.array(ignore, float).reshape(-1, 8),
        labels_ignore=np.array(ignore_labels, np.int64),
    )


def dets(*rows):
    return np.array(rows, float).reshape(-1, 9)


# AP of the curve recall [.5, .5, 1], precision [1, .5, 2/3] (TP, FP, TP with 2 GTs)
AP11_TP_FP_TP = (6 * 1 + 5 * (2 / 3)) / 11  # t = 0..0.5 -> 1, t = 0.6..1 -> 2/3
AREA_TP_FP_TP = 0.5 * 1 + 0.5 * (2 / 3)


def test_average_precision_modes():
    rec = np.array([0.5, 0.5, 1.0])
    prec = np.array([1.0, 0.5, 2 / 3])
    assert average_precision(rec, prec, '11points') == pytest.approx(AP11_TP_FP_TP)
    assert average_precision(rec, prec, 'area') == pytest.approx(AREA_TP_FP_TP)
    # 2-D input: one AP per row; empty curve -> 0
    np.testing.assert_allclose(
        average_precision(np.stack([rec, rec]), np.stack([prec, prec])), [AREA_TP_FP_TP] * 2
    )
    assert average_precision(np.zeros(0), np.zeros(0), '11points') == 0
    with pytest.raises(ValueError, match='mode'):
        average_precision(rec, prec, 'voc')


@pytest.mark.parametrize('mode', ['mmrotate', 'devkit'])
@pytest.mark.parametrize('use_07', [True, False])
def test_duplicate_detection_is_fp(mode, use_07):
    gts = [q(0, 0, 4, 4), q(10, 0, 4, 4)]
    d = dets(qd(0, 0, 4, 4, 0.9), qd(0, 0, 4, 4, 0.8), qd(10, 0, 4, 4, 0.7))
    mean_ap, res = eval_rbbox_map(
        [[d]], [ann(gts, [0, 0])], use_07_metric=use_07, box_type='qbox', mode=mode, logger='silent'
    )
    expected = AP11_TP_FP_TP if use_07 else AREA_TP_FP_TP
    assert mean_ap == pytest.approx(expected)
    np.testing.assert_allclose(res[0]['recall'], [0.5, 0.5, 1])
    np.testing.assert_allclose(res[0]['precision'], [1, 0.5, 2 / 3], rtol=1e-6)
    assert res[0]['num_gts'] == 2 and res[0]['num_dets'] == 3


@pytest.mark.parametrize('mode', ['mmrotate', 'devkit'])
def test_difficult_objects_are_ignored(mode):
    # det 0.9 hits the ignored (difficult) GT: neither TP nor FP; 0.8 is an FP, 0.7 a TP
    d = dets(qd(10, 0, 4, 4, 0.9), qd(50, 50, 4, 4, 0.8), qd(0, 0, 4, 4, 0.7))
    with_ignore = ann([q(0, 0, 4, 4)], [0], ignore=[q(10, 0, 4, 4)], ignore_labels=[0])
    mean_ap, res = eval_rbbox_map([[d]], [with_ignore], box_type='qbox', mode=mode, logger='silent')
    assert res[0]['num_gts'] == 1
    np.testing.assert_allclose(res[0]['recall'], [0, 0, 1])
    assert mean_ap == pytest.approx(0.5)  # precision 1/2 at every recall level
    # the same object counted as a normal GT: TP, FP, TP over 2 GTs
    counted = ann([q(0, 0, 4, 4), q(10, 0, 4, 4)], [0, 0])
    mean_ap, _ = eval_rbbox_map([[d]], [counted], box_type='qbox', mode=mode, logger='silent')
    assert mean_ap == pytest.approx(AP11_TP_FP_TP)


@pytest.mark.parametrize('mode', ['mmrotate', 'devkit'])
def test_image_without_gt_gives_false_positives(mode):
    d_img0 = dets(qd(0, 0, 4, 4, 0.6))
    d_img1 = dets(qd(0, 0, 4, 4, 0.9))  # same place, but image 1 has no object
    mean_ap, res = eval_rbbox_map(
        [[d_img0], [d_img1]],
        [ann([q(0, 0, 4, 4)], [0]), ann([], [])],
        box_type='qbox',
        mode=mode,
        logger='silent',
    )
    np.testing.assert_allclose(res[0]['precision'], [0, 0.5])
    assert mean_ap == pytest.approx(0.5)


def test_iou_exactly_at_threshold_qbox():
    # 1x1 det inside a 2x1 GT: IoU exactly 0.5 -> TP with >= (mmrotate), FP with > (devkit)
    a = [ann([q(0, 0, 2, 1)], [0])]
    d = [[dets(qd(0, 0, 1, 1, 0.9))]]
    assert eval_rbbox_map(d, a, box_type='qbox', mode='mmrotate', logger='silent')[0] == 1.0
    assert eval_rbbox_map(d, a, box_type='qbox', mode='devkit', logger='silent')[0] == 0.0


def test_iou_exactly_at_threshold_rbox():
    a = [dict(bboxes=np.array([[1.0, 0.5, 2, 1, 0]]), labels=np.array([0]))]
    d = [[np.array([[0.5, 0.5, 1, 1, 0, 0.9]])]]
    assert eval_rbbox_map(d, a, box_type='rbox', mode='mmrotate', logger='silent')[0] == 1.0
    assert eval_rbbox_map(d, a, box_type='rbox', mode='devkit', logger='silent')[0] == 0.0
    # a rotated pair: the det is the GT turned by 90 degrees about its centre (a 4x2 box
    # vs a 2x4 box: intersection 2x2 = 4, union 12 -> IoU 1/3)
    a = [dict(bboxes=np.array([[10.0, 10, 4, 2, 0.3]]), labels=np.array([0]))]
    d = [[np.array([[10.0, 10, 4, 2, 0.3 + np.pi / 2, 0.9]])]]
    for mode in ('mmrotate', 'devkit'):
        assert eval_rbbox_map(d, a, iou_thr=0.33, mode=mode, logger='silent')[0] == 1.0
        assert eval_rbbox_map(d, a, iou_thr=0.34, mode=mode, logger='silent')[0] == 0.0


def test_det_assigned_to_covered_gt_is_fp():
    # two overlapping GTs; the second det overlaps GT0 most (IoU 0.6) and GT1 with 1/3 >= 0.3,
    # yet GT0 is covered already, so it is an FP (mmrotate and the devkit agree)
    a = [ann([q(0, 0, 4, 4), q(3, 0, 4, 4)], [0, 0])]
    d = [[dets(qd(0, 0, 4, 4, 0.9), qd(1, 0, 4, 4, 0.8))]]
    for mode in ('mmrotate', 'devkit'):
        mean_ap, res = eval_rbbox_map(
            d, a, iou_thr=0.3, box_type='qbox', mode=mode, logger='silent'
        )
        np.testing.assert_allclose(res[0]['recall'], [0.5, 0.5])
        assert mean_ap == pytest.approx(6 / 11)


def test_mean_over_classes_differs_between_modes():
    # class 0 perfect; class 1 has no GT but a detection
    a = [ann([q(0, 0, 4, 4)], [0])]
    d = [[dets(qd(0, 0, 4, 4, 0.9)), dets(qd(20, 20, 4, 4, 0.9))]]
    mm, res = eval_rbbox_map(d, a, box_type='qbox', mode='mmrotate', logger='silent')
    dk, _ = eval_rbbox_map(d, a, box_type='qbox', mode='devkit', logger='silent')
    assert res[1]['num_gts'] == 0 and res[1]['ap'] == 0
    assert mm == 1.0  # only classes with GT
    assert dk == 0.5  # all classes


def test_scale_ranges():
    # small GT (1x1) and large GT (10x10); an unmatched small det scored highest
    a = [ann([q(0, 0, 1, 1), q(20, 20, 10, 10)], [0, 0])]
    d = [[dets(qd(50, 50, 1, 1, 0.95), qd(0, 0, 1, 1, 0.9), qd(20, 20, 10, 10, 0.8))]]
    mean_ap, res = eval_rbbox_map(
        d, a, scale_ranges=[(0, 5), (5, 100)], box_type='qbox', logger='silent'
    )
    # small range: the stray small det is an FP, the big GT ignored -> precision 1/2
    # large range: both small dets are outside the range and not counted -> AP 1
    assert mean_ap == pytest.approx([0.5, 1.0])
    np.testing.assert_array_equal(res[0]['num_gts'], [1, 1])


def test_tpfp_default_single_image():
    gts = np.array([q(0, 0, 4, 4)], float)
    ignored = np.array([q(10, 0, 4, 4)], float)
    d = dets(qd(0, 0, 4, 4, 0.5), qd(0, 0, 4, 4, 0.9), qd(10, 0, 4, 4, 0.8), qd(30, 0, 1, 1, 0.1))
    tp, fp = tpfp_default(d, gts, ignored, box_type='qbox')
    # the 0.9 det takes the GT, the 0.5 duplicate is an FP, 0.8 is on the ignored GT
    np.testing.assert_array_equal(tp, [[0, 1, 0, 0]])
    np.testing.assert_array_equal(fp, [[1, 0, 0, 1]])
    # no GT at all: every detection is an FP
    tp, fp = tpfp_default(d, np.zeros((0, 8)), box_type='qbox')
    assert tp.sum() == 0 and fp.sum() == 4


def test_summary_table_and_bad_arguments(capsys):
    a = [ann([q(0, 0, 4, 4)], [0])]
    d = [[dets(qd(0, 0, 4, 4, 0.9))]]
    eval_rbbox_map(d, a, box_type='qbox', dataset=['plane'])
    out = capsys.readouterr().out
    assert 'plane' in out and 'mAP' in out and '1.000' in out
    with pytest.raises(ValueError, match='mode'):
        eval_rbbox_map(d, a, box_type='qbox', mode='voc')
    with pytest.raises(ValueError, match='box_type'):
        eval_rbbox_map(d, a, box_type='hbox')
    with pytest.raises(ValueError, match='iou_thr'):
        eval_rbbox_map(d, a, box_type='qbox', iou_thr=0)
    with pytest.raises(ValueError, match=r'det_results\[0\]\[0\]'):
        eval_rbbox_map([[np.zeros((1, 6))]], a, box_type='qbox')


def test_devkit_mode_equals_devkit_loop_on_random_workload():
    """The vectorised devkit mode against the devkit's per-detection loop (shapely IoU)."""
    import importlib.util
    import os.path as osp

    path = osp.join(
        osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
        'tools',
        'analysis_tools',
        'benchmark_dota_eval.py',
    )
    spec = importlib.util.spec_from_file_location('benchmark_dota_eval', path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    w = bench.make_workload(num_images=6, num_classes=4, num_dets=3000, seed=3)
    for thr in (0.5, 0.7):
        ref = bench.shapely_devkit_map(w['qbox_dets'], w['qbox_anns'], 4, iou_thr=thr)
        mean_ap, res = eval_rbbox_map(
            w['qbox_dets'],
            w['qbox_anns'],
            iou_thr=thr,
            box_type='qbox',
            mode='devkit',
            logger='silent',
        )
        assert min(ref) > 0.05  # a non-trivial curve for every class
        np.testing.assert_allclose([r['ap'] for r in res], ref, atol=1e-12)
        assert mean_ap == pytest.approx(np.mean(ref), abs=1e-12)
