"""DOTAMetric(class_groups=...): mAP per class group (base / novel), hand-computed."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.logging import MMLogger

from ai4rs.evaluation import DOTAMetric, eval_matches, match_detections, mean_ap_of_classes
from ai4rs.registry import METRICS

# 'e' has no ground truth in the samples below
CLASSES = ('a', 'b', 'c', 'd', 'e')
GROUPS = dict(base=['a', 'b', 'e'], novel=['c'])  # 'd' is in no group


def q(x, y, w, h):
    """Axis-aligned qbox (x1 y1 ... x4 y4) of the square/rectangle at (x, y) of size w x h."""
    return [x, y, x + w, y, x + w, y + h, x, y + h]


def samples():
    """Per-class APs (11-point and area alike; classes a, b, c, d, e):

    - a: one GT 5x5, one det 3x5 inside it: IoU 15/25 = 0.6 -> AP 1 at 0.5, 0 at 0.75
    - b: one GT, a stray det (score 0.9) before an exact det (0.8): precision 1/2 at
      recall 1 -> AP 0.5 at any threshold
    - c: one GT, one det elsewhere -> AP 0
    - d: one GT, exact det (image B) -> AP 1
    - e: no GT, no det
    """
    preds_a = [q(0, 0, 3, 5), q(50, 50, 4, 4), q(20, 0, 4, 4), q(80, 80, 4, 4)]
    scores_a = [0.7, 0.9, 0.8, 0.6]
    labels_a = [0, 1, 1, 2]
    gts_a = [q(0, 0, 5, 5), q(20, 0, 4, 4), q(100, 100, 4, 4)]
    return [
        _sample('A', preds_a, scores_a, labels_a, gts_a, [0, 1, 2]),
        _sample('B', [q(0, 0, 6, 6)], [0.5], [3], [q(0, 0, 6, 6)], [3]),
    ]


def _sample(img_id, pred_boxes, scores, labels, gt_boxes, gt_labels):
    return dict(
        img_id=img_id,
        pred_instances=dict(
            bboxes=torch.tensor(pred_boxes, dtype=torch.float32).reshape(-1, 8),
            scores=torch.tensor(scores, dtype=torch.float32),
            labels=torch.tensor(labels, dtype=torch.int64),
        ),
        gt_instances=dict(
            bboxes=torch.tensor(gt_boxes, dtype=torch.float32).reshape(-1, 8),
            labels=torch.tensor(gt_labels, dtype=torch.int64),
        ),
    )


def run(metric, data=None):
    data = samples() if data is None else data
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process({}, data)
    return metric.evaluate(len(data))


@pytest.mark.parametrize('eval_mode', ['11points', 'area'])
def test_group_maps_mmrotate_mode(eval_mode):
    res = run(
        DOTAMetric(
            iou_thrs=[0.5, 0.75], predict_box_type='qbox', eval_mode=eval_mode, class_groups=GROUPS
        )
    )
    assert list(res) == [
        'dota/mAP',
        'dota/mAP_base',
        'dota/mAP_novel',
        'dota/AP50',
        'dota/AP50_base',
        'dota/AP50_novel',
        'dota/AP75',
        'dota/AP75_base',
        'dota/AP75_novel',
    ]
    # mmrotate: mean over the classes with GT (a, b, c, d; e left out, also from base)
    assert res['dota/AP50'] == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert res['dota/AP75'] == pytest.approx((0 + 0.5 + 0 + 1) / 4)
    assert res['dota/mAP'] == pytest.approx((0.625 + 0.375) / 2)
    assert res['dota/AP50_base'] == pytest.approx((1 + 0.5) / 2)
    assert res['dota/AP75_base'] == pytest.approx((0 + 0.5) / 2)
    assert res['dota/mAP_base'] == pytest.approx((0.75 + 0.25) / 2)
    assert res['dota/AP50_novel'] == 0.0
    assert res['dota/AP75_novel'] == 0.0
    assert res['dota/mAP_novel'] == 0.0


def test_group_maps_devkit_mode_count_classes_without_ground_truth():
    res = run(DOTAMetric(iou_thrs=0.5, predict_box_type='qbox', mode='devkit', class_groups=GROUPS))
    keys = ['dota/mAP', 'dota/mAP_base', 'dota/mAP_novel']
    assert list(res) == keys + ['dota/AP50', 'dota/AP50_base', 'dota/AP50_novel']
    assert res['dota/AP50'] == pytest.approx((1 + 0.5 + 0 + 1 + 0) / 5)
    assert res['dota/AP50_base'] == pytest.approx((1 + 0.5 + 0) / 3)  # e counts with AP 0
    assert res['dota/mAP_base'] == pytest.approx(0.5)
    assert res['dota/AP50_novel'] == 0.0


def test_three_classes_base_novel_example():
    """The issue's example: APs 1.0, 0.5, 0.0 -> base 0.75, novel 0.0, overall 0.5."""
    classes = ('a', 'b', 'c')
    data = [s for s in samples() if s['img_id'] == 'A']
    m = DOTAMetric(predict_box_type='qbox', class_groups=dict(base=['a', 'b'], novel=['c']))
    m.dataset_meta = dict(classes=classes)
    m.process({}, data)
    res = m.evaluate(len(data))
    assert res == pytest.approx(
        {
            'dota/mAP': 0.5,
            'dota/mAP_base': 0.75,
            'dota/mAP_novel': 0.0,
            'dota/AP50': 0.5,
            'dota/AP50_base': 0.75,
            'dota/AP50_novel': 0.0,
        }
    )


def test_scale_ranges_get_group_keys_per_range():
    # every box has area < 100**2; none has area < 1
    m = DOTAMetric(predict_box_type='qbox', scale_ranges=[(0, 100), (0, 1)], class_groups=GROUPS)
    res = run(m)
    assert list(res) == [
        'dota/mAP',
        'dota/mAP_base',
        'dota/mAP_novel',
        'dota/AP50_0-100',
        'dota/AP50_0-100_base',
        'dota/AP50_0-100_novel',
        'dota/AP50_0-1',
        'dota/AP50_0-1_base',
        'dota/AP50_0-1_novel',
    ]
    assert res['dota/AP50_0-100'] == pytest.approx(0.625)
    assert res['dota/AP50_0-100_base'] == pytest.approx(0.75)
    assert res['dota/AP50_0-1_base'] == 0.0  # no class of the group has GT in the range
    assert res['dota/mAP_base'] == pytest.approx(0.75 / 2)


def test_without_class_groups_keys_and_values_are_unchanged():
    plain = run(DOTAMetric(iou_thrs=[0.5, 0.75], predict_box_type='qbox'))
    assert list(plain) == ['dota/mAP', 'dota/AP50', 'dota/AP75']
    grouped = run(DOTAMetric(iou_thrs=[0.5, 0.75], predict_box_type='qbox', class_groups=GROUPS))
    assert {k: grouped[k] for k in plain} == plain


def test_summary_table_has_group_rows(tmp_path):
    log_file = tmp_path / 'eval.log'
    MMLogger.get_instance('test_dota_class_groups', log_file=str(log_file))
    res = run(DOTAMetric(predict_box_type='qbox', class_groups=GROUPS))
    text = log_file.read_text()
    lines = text.splitlines()
    mean_row = next(i for i, line in enumerate(lines) if line.startswith('| mAP '))
    assert lines[mean_row - 1].startswith('+--') and lines[mean_row + 3].startswith('+--')
    rows = {
        line.split('|')[1].strip(): line.split('|')[-2].strip()
        for line in text.splitlines()
        if line.startswith('| mAP')
    }
    assert rows == {'mAP': '0.625', 'mAP_base': '0.750', 'mAP_novel': '0.000'}
    assert res['dota/mAP_base'] == pytest.approx(0.75)


def test_group_without_ground_truth_warns(tmp_path):
    log_file = tmp_path / 'eval.log'
    MMLogger.get_instance('test_dota_class_groups_warn', log_file=str(log_file))
    res = run(DOTAMetric(predict_box_type='qbox', class_groups=dict(base=['a'], novel=['e'])))
    assert res['dota/mAP_novel'] == 0.0
    assert "no class of group 'novel' has ground truth" in log_file.read_text()
    assert "group 'base'" not in log_file.read_text()


def test_mean_ap_of_classes_is_the_overall_rule():
    data = samples()
    det_results, annotations = [], []
    for s in data:
        boxes = s['pred_instances']['bboxes'].double().numpy()
        dets = np.concatenate([boxes, s['pred_instances']['scores'].double().numpy()[:, None]], 1)
        labels = s['pred_instances']['labels'].numpy()
        det_results.append([dets[labels == c] for c in range(len(CLASSES))])
        gt = s['gt_instances']
        annotations.append(dict(bboxes=gt['bboxes'].double().numpy(), labels=gt['labels'].numpy()))
    for mode in ('mmrotate', 'devkit'):
        matches = match_detections(det_results, annotations, 'qbox', mode, len(CLASSES))
        mean_ap, per_class = eval_matches(matches, 0.5)
        assert mean_ap_of_classes(per_class, mode) == pytest.approx(mean_ap)
    # subsets: devkit counts the class without GT (e), mmrotate leaves it out
    assert mean_ap_of_classes(per_class, 'devkit', [1, 4]) == pytest.approx(0.25)
    assert mean_ap_of_classes(per_class, 'mmrotate', [1, 4]) == pytest.approx(0.5)
    assert mean_ap_of_classes(per_class, 'mmrotate', [4]) == 0.0
    with pytest.raises(ValueError, match=r'\[5\] out of range'):
        mean_ap_of_classes(per_class, 'mmrotate', [0, 5])


def test_class_names_are_checked_against_the_dataset():
    m = DOTAMetric(class_groups=dict(base=['a', 'plane'], novel=['c']))
    with pytest.raises(ValueError, match=r"\['plane'\].*\['a', 'b', 'c', 'd', 'e'\]"):
        m.dataset_meta = dict(classes=CLASSES)
    # the Runner sets the meta through the Evaluator
    evaluator = Evaluator(METRICS.build(dict(type='DOTAMetric', class_groups=dict(novel=['x']))))
    with pytest.raises(ValueError, match=r"\['x'\]"):
        evaluator.dataset_meta = dict(classes=CLASSES)
    # a meta without classes is not checked (compute_metrics then asks for them)
    m.dataset_meta = dict(version='1.0')


def test_bad_class_groups_are_errors():
    with pytest.raises(ValueError, match="'a'.*also in group 'base'"):
        DOTAMetric(class_groups=dict(base=['a', 'b'], novel=['a']))
    with pytest.raises(ValueError, match="'b'.*twice"):
        DOTAMetric(class_groups=dict(base=['b', 'b']))
    with pytest.raises(ValueError, match=r"class_groups\['novel'\] is empty"):
        DOTAMetric(class_groups=dict(base=['a'], novel=[]))
    with pytest.raises(ValueError, match='class_groups is empty'):
        DOTAMetric(class_groups={})
    with pytest.raises(TypeError, match='list of class names'):
        DOTAMetric(class_groups=dict(base='a'))
    with pytest.raises(TypeError, match='dict of group name'):
        DOTAMetric(class_groups=['a', 'b'])
    with pytest.raises(ValueError, match='format_only'):
        DOTAMetric(class_groups=GROUPS, format_only=True, outfile_prefix='unused_dir')
    with pytest.raises(ValueError, match='merge_patches'):
        DOTAMetric(class_groups=GROUPS, merge_patches=True)


def test_documented_example_runs_on_dota_classes():
    """docs/dota.md's class_groups example: valid DOTA v1.0 names, and the keys it lists."""
    from ai4rs.datasets.dota import DOTA_V1_CLASSES

    doc = (Path(__file__).parents[2] / 'docs' / 'dota.md').read_text()
    section = doc.split('### AP per class group (base / novel)')[1]
    code = section.split('```python\n')[1].split('```')[0]
    namespace: dict = {}
    exec(code, namespace)
    listed = re.findall(r'dota/\w+', code.split('# ->')[1])
    metric = METRICS.build(dict(namespace['val_evaluator'], predict_box_type='qbox'))
    metric.dataset_meta = dict(classes=DOTA_V1_CLASSES)
    plane = DOTA_V1_CLASSES.index('plane')
    metric.process({}, [_sample('P1', [q(0, 0, 8, 8)], [0.9], [plane], [q(0, 0, 8, 8)], [plane])])
    res = metric.evaluate(1)
    assert list(res) == listed
    assert res['dota/mAP_base'] == 1.0 and res['dota/mAP_novel'] == 0.0
