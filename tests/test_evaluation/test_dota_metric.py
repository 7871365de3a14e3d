"""DOTAMetric: mAP keys, GT sources, patch merging, Task1 files and the zip."""

import os
import zipfile

import numpy as np
import pytest
import torch

from ai4rs.evaluation import DOTAMetric, parse_patch_name
from ai4rs.registry import METRICS

CLASSES = ('plane', 'ship', 'harbor')


def q(x, y, w, h):
    return [x, y, x + w, y, x + w, y + h, x, y + h]


def sample(
    img_id,
    pred_boxes,
    scores,
    labels,
    gt_boxes=None,
    gt_labels=None,
    ign_boxes=None,
    ign_labels=None,
):
    dim = len(pred_boxes[0])
    s = dict(
        img_id=img_id,
        pred_instances=dict(
            bboxes=torch.tensor(pred_boxes, dtype=torch.float32).reshape(-1, dim),
            scores=torch.tensor(scores, dtype=torch.float32),
            labels=torch.tensor(labels, dtype=torch.int64),
        ),
    )
    if gt_boxes is not None:
        s['gt_instances'] = dict(
            bboxes=torch.tensor(gt_boxes, dtype=torch.float32).reshape(-1, dim),
            labels=torch.tensor(gt_labels),
        )
        ign_boxes = [] if ign_boxes is None else ign_boxes
        ign_labels = [] if ign_labels is None else ign_labels
        s['ignored_instances'] = dict(
            bboxes=torch.tensor(ign_boxes, dtype=torch.float32).reshape(-1, dim),
            labels=torch.tensor(ign_labels, dtype=torch.int64),
        )
    return s


def run(metric, samples):
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process({}, samples)
    return metric.evaluate(len(samples))


def test_registered_with_upstream_arguments():
    m = METRICS.build(
        dict(
            type='DOTAMetric',
            iou_thrs=[0.5, 0.75],
            eval_mode='area',
            predict_box_type='qbox',
            mode='devkit',
        )
    )
    assert isinstance(m, DOTAMetric) and m.iou_thrs == [0.5, 0.75] and not m.use_07_metric


def test_map_keys_and_values_in_both_modes():
    # image A: plane GT hit exactly (IoU 1) and a ship GT hit with IoU 0.6 (3/5 overlap);
    # image B: no objects, one stray ship det
    samples = [
        sample(
            'A',
            [q(0, 0, 4, 4), q(20, 0, 3, 5)],
            [0.9, 0.8],
            [0, 1],
            gt_boxes=[q(0, 0, 4, 4), q(20, 0, 5, 5)],
            gt_labels=[0, 1],
        ),
        sample('B', [q(0, 0, 4, 4)], [0.3], [1], gt_boxes=[], gt_labels=[]),
    ]
    res = run(DOTAMetric(iou_thrs=[0.5, 0.75], predict_box_type='qbox'), samples)
    assert list(res) == ['dota/mAP', 'dota/AP50', 'dota/AP75']
    assert res['dota/AP50'] == pytest.approx(1.0)  # the ship FP comes after its TP
    assert res['dota/AP75'] == pytest.approx(0.5)  # plane 1, ship 0 (harbor has no GT)
    assert res['dota/mAP'] == pytest.approx(0.75)
    res = run(DOTAMetric(iou_thrs=[0.5, 0.75], predict_box_type='qbox', mode='devkit'), samples)
    assert res['dota/AP50'] == pytest.approx(2 / 3)  # mean over all 3 classes
    assert res['dota/AP75'] == pytest.approx(1 / 3)


def test_ignored_instances_and_instances_fallback():
    preds = [q(10, 0, 4, 4), q(50, 50, 4, 4), q(0, 0, 4, 4)]
    scores, labels = [0.9, 0.8, 0.7], [0, 0, 0]
    from_gt = sample(
        'A',
        preds,
        scores,
        labels,
        gt_boxes=[q(0, 0, 4, 4)],
        gt_labels=[0],
        ign_boxes=[q(10, 0, 4, 4)],
        ign_labels=[0],
    )
    res = run(DOTAMetric(predict_box_type='qbox'), [from_gt])
    assert res['dota/AP50'] == pytest.approx(0.5)
    # the dataset annotation (DOTADataset data dict) gives the same ground truth
    from_ann = sample('A', preds, scores, labels)
    from_ann['instances'] = [
        dict(bbox=q(0, 0, 4, 4), bbox_label=0, ignore_flag=0),
        dict(bbox=q(10, 0, 4, 4), bbox_label=0, ignore_flag=1),
    ]
    res = run(DOTAMetric(predict_box_type='qbox', mode='devkit'), [from_ann])
    assert res['dota/AP50'] == pytest.approx(0.5 / 3)


def test_sample_without_ground_truth_is_an_error():
    with pytest.raises(ValueError, match="'T1'.*format_only"):
        run(DOTAMetric(predict_box_type='qbox'), [sample('T1', [q(0, 0, 1, 1)], [0.5], [0])])


def test_parse_patch_name():
    assert parse_patch_name('P0001__1024__824___0') == ('P0001', 824, 0)
    assert parse_patch_name('P2598__0.5__1648___2472') == ('P2598', 1648, 2472)
    with pytest.raises(ValueError, match="'P0001'.*merge_patches=False"):
        parse_patch_name('P0001')


def _read_task1(folder):
    out = {}
    for cls in CLASSES:
        with open(os.path.join(folder, f'Task1_{cls}.txt')) as f:
            out[cls] = [line.split() for line in f if line.strip()]
    return out


def test_merge_patches_qbox(tmp_path):
    prefix = str(tmp_path / 'sub')
    # one ship seen by two overlapping patches (same place after translation, scores 0.9 and
    # 0.6) and a plane seen only by the second patch; another image has a harbor
    samples = [
        sample('P1__64__0___0', [q(50, 10, 4, 2)], [0.6], [1]),
        sample('P1__64__48___16', [q(2, -6, 4, 2), q(10, 20, 6, 6)], [0.9, 0.7], [1, 0]),
        sample('P2__64__0___0', [q(1, 1, 5, 5)], [0.5], [2]),
    ]
    res = run(
        DOTAMetric(predict_box_type='qbox', merge_patches=True, outfile_prefix=prefix), samples
    )
    assert res == {}
    files = _read_task1(prefix)
    assert files['ship'] == [['P1', '0.9'] + [f'{v:.2f}' for v in q(50, 10, 4, 2)]]
    assert files['plane'] == [['P1', '0.7'] + [f'{v:.2f}' for v in q(58, 36, 6, 6)]]
    assert files['harbor'] == [['P2', '0.5'] + [f'{v:.2f}' for v in q(1, 1, 5, 5)]]
    with zipfile.ZipFile(os.path.join(prefix, 'sub.zip')) as zf:
        assert sorted(zf.namelist()) == sorted(f'Task1_{c}.txt' for c in CLASSES)
        assert zf.read('Task1_ship.txt').decode().startswith('P1 0.9 50.00 10.00')


def test_merge_patches_rbox_uses_nms_rotated(tmp_path):
    prefix = str(tmp_path / 'sub')
    samples = [
        sample('P1__64__0___0', [[52, 11, 4, 2, 0.0], [10, 10, 4, 4, 0.0]], [0.6, 0.4], [1, 1]),
        sample('P1__64__48___16', [[4, -5, 4, 2, 0.0]], [0.9], [1]),
    ]
    run(DOTAMetric(merge_patches=True, outfile_prefix=prefix), samples)
    files = _read_task1(prefix)
    assert files['plane'] == [] and files['harbor'] == []
    ship = sorted(files['ship'], key=lambda r: -float(r[1]))
    assert [r[1] for r in ship] == ['0.9', '0.4']  # the 0.6 duplicate is merged away
    corners = np.array(ship[0][2:], float).reshape(4, 2)
    np.testing.assert_allclose(corners.min(0), [50, 10], atol=1e-4)
    np.testing.assert_allclose(corners.max(0), [54, 12], atol=1e-4)


def test_format_only_writes_every_class_and_zip(tmp_path):
    prefix = str(tmp_path / 'out' / 'test_run')
    samples = [sample('P7', [q(0, 0, 2, 2), q(5, 5, 2, 2)], [0.25, 0.123456789], [0, 0])]
    res = run(DOTAMetric(predict_box_type='qbox', format_only=True, outfile_prefix=prefix), samples)
    assert res == {}
    files = _read_task1(prefix)
    assert files['ship'] == [] and files['harbor'] == []
    assert files['plane'] == [
        ['P7', '0.25'] + [f'{v:.2f}' for v in q(0, 0, 2, 2)],
        ['P7', '0.123457'] + [f'{v:.2f}' for v in q(5, 5, 2, 2)],
    ]
    with zipfile.ZipFile(os.path.join(prefix, 'test_run.zip')) as zf:
        assert sorted(zf.namelist()) == sorted(f'Task1_{c}.txt' for c in CLASSES)
    assert os.path.isfile(prefix + '.bbox.json')


def test_outfile_prefix_must_not_exist(tmp_path):
    existing = tmp_path / 'exists'
    existing.mkdir()
    with pytest.raises(ValueError, match='already exists'):
        DOTAMetric(merge_patches=True, outfile_prefix=str(existing))
    # created between construction and evaluation: refused when writing, too
    prefix = tmp_path / 'later'
    m = DOTAMetric(predict_box_type='qbox', merge_patches=True, outfile_prefix=str(prefix))
    prefix.mkdir()
    with pytest.raises(ValueError, match='already exists'):
        run(m, [sample('P1__64__0___0', [q(0, 0, 1, 1)], [0.5], [0])])


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match='outfile_prefix'):
        DOTAMetric(format_only=True)
    with pytest.raises(ValueError, match='mode'):
        DOTAMetric(mode='voc')
    with pytest.raises(ValueError, match='eval_mode'):
        DOTAMetric(eval_mode='12points')
    with pytest.raises(ValueError, match='predict_box_type'):
        DOTAMetric(predict_box_type='hbox')
    with pytest.raises(ValueError, match='iou_thrs'):
        DOTAMetric(iou_thrs=[0.5, 1.5])
    with pytest.raises(KeyError, match='metric'):
        DOTAMetric(metric='recall')
    m = DOTAMetric()
    with pytest.raises(ValueError, match='predict_box_type'):
        m.process({}, [sample('A', [q(0, 0, 1, 1)], [0.5], [0])])


def test_box_objects_and_mixed_box_types():
    """Predictions as RotatedBoxes, ground truth as QuadriBoxes (no ConvertBoxType)."""
    from mmengine.structures import InstanceData

    from ai4rs.structures import DetDataSample
    from ai4rs.structures.bbox import QuadriBoxes, RotatedBoxes

    ds = DetDataSample(metainfo=dict(img_id='A'))
    ds.gt_instances = InstanceData(
        bboxes=QuadriBoxes(torch.tensor([q(0, 0, 4, 2), q(10, 0, 2, 1)], dtype=torch.float32)),
        labels=torch.tensor([0, 1]),
    )
    ds.ignored_instances = InstanceData(
        bboxes=QuadriBoxes(torch.zeros((0, 8))), labels=torch.zeros(0, dtype=torch.int64)
    )
    # plane: exact (IoU 1); ship: the 1x1 left half of the 2x1 GT (IoU exactly 0.5)
    ds.pred_instances = InstanceData(
        bboxes=RotatedBoxes(torch.tensor([[2.0, 1, 4, 2, 0], [10.5, 0.5, 1, 1, 0]])),
        scores=torch.tensor([0.9, 0.8]),
        labels=torch.tensor([0, 1]),
    )
    res = run(DOTAMetric(), [ds.to_dict()])
    assert res['dota/AP50'] == pytest.approx(1.0)  # >= 0.5: both TP
    res = run(DOTAMetric(mode='devkit'), [ds])  # a DetDataSample is accepted too
    assert res['dota/AP50'] == pytest.approx(1 / 3)  # ship FP (> 0.5 fails), harbor 0


def test_samples_without_img_id_or_path_get_distinct_ids():
    """Ids fall back to the order of arrival: 0, 1, 2, ... across batches, never reused."""
    metric = DOTAMetric(predict_box_type='qbox')
    metric.dataset_meta = dict(classes=CLASSES)
    for _ in range(3):
        batch = [sample(None, [q(0, 0, 4, 4)], [0.9], [0], [q(0, 0, 4, 4)], [0]) for _ in range(2)]
        for s in batch:
            del s['img_id']
        metric.process({}, batch)
    assert [r['img_id'] for r in metric.results] == ['0', '1', '2', '3', '4', '5']


def test_raw_tensors_are_read_as_predict_box_type_never_guessed():
    """A raw (n, 8) ground-truth tensor under predict_box_type='rbox' is an error, not a guess;
    box objects keep their type and are converted."""
    from ai4rs.structures.bbox import QuadriBoxes

    raw = sample(
        'A',
        [[2.0, 2.0, 4.0, 4.0, 0.0]],
        [0.9],
        [0],
        gt_boxes=[[2.0, 2.0, 4.0, 4.0, 0.0]],
        gt_labels=[0],
    )
    raw['gt_instances']['bboxes'] = torch.tensor([q(0, 0, 4, 4)])
    with pytest.raises(ValueError, match=r'gt_instances.bboxes.*predict_box_type=.rbox'):
        run(DOTAMetric(), [raw])
    typed = dict(
        raw,
        gt_instances=dict(
            bboxes=QuadriBoxes(torch.tensor([q(0, 0, 4, 4)])), labels=torch.tensor([0])
        ),
    )
    assert run(DOTAMetric(), [typed])['dota/AP50'] == pytest.approx(1.0)
