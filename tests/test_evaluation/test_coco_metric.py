"""CocoMetric and tools/analysis_tools/coco_eval.py against pycocotools' COCOeval (reference)."""

import contextlib
import io
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch

from ai4rs.evaluation.functional.coco_eval import COCO_BACKENDS, resolve_backend
from ai4rs.evaluation.metrics import CocoMetric
from ai4rs.structures.bbox import HorizontalBoxes, RotatedBoxes

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ALL_ITEMS = [
    'mAP',
    'mAP_50',
    'mAP_75',
    'mAP_s',
    'mAP_m',
    'mAP_l',
    'AR@100',
    'AR@300',
    'AR@1000',
    'AR_s@1000',
    'AR_m@1000',
    'AR_l@1000',
]


def _installed_backends():
    out = []
    for b in COCO_BACKENDS:
        try:
            resolve_backend(b)
            out.append(b)
        except ImportError:
            pass
    return out


BACKENDS = _installed_backends()


def _f32(a):
    """Round to float32 and back: CocoMetric receives float32 tensors."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def make_case(
    seed, num_images=12, num_classes=5, crowd_prob=0.15, empty_every=4, many_dets_image=True
):
    """A GT dict and per-image predictions (xyxy float32-exact numpy arrays).

    Non-contiguous category ids; the last class has no ground truth (but gets detections);
    every ``empty_every``-th image is empty (with detections); sizes span small (< 32^2),
    medium and large; some crowd regions; one image gets 150 detections (> maxDets 100).
    """
    rng = np.random.default_rng(seed)
    names = [f'class{i}' for i in range(num_classes)]
    cat_ids = [3 + 7 * i for i in range(num_classes)]  # non-contiguous
    categories = [dict(id=c, name=n) for c, n in zip(cat_ids, names)]
    images, anns, preds = [], [], []
    for img_id in range(1, num_images + 1):
        w_img, h_img = int(rng.integers(200, 400)), int(rng.integers(200, 400))
        images.append(dict(id=img_id, width=w_img, height=h_img, file_name=f'{img_id}.jpg'))
        n = 0 if img_id % empty_every == 0 else int(rng.integers(1, 8))
        gt_boxes, gt_labels = [], []
        for _ in range(n):
            side = float(np.exp(rng.uniform(np.log(8), np.log(150))))
            w, h = _f32([side * rng.uniform(0.7, 1.3), side * rng.uniform(0.7, 1.3)])
            x, y = _f32([rng.uniform(0, w_img - w), rng.uniform(0, h_img - h)])
            label = int(rng.integers(0, num_classes - 1))  # last class never has GT
            anns.append(
                dict(
                    id=len(anns) + 1,
                    image_id=img_id,
                    category_id=cat_ids[label],
                    bbox=[x, y, w, h],
                    area=float(w * h),
                    iscrowd=int(rng.random() < crowd_prob),
                )
            )
            gt_boxes.append([x, y, x + w, y + h])
            gt_labels.append(label)
        boxes, labels = [], []
        for b, lab in zip(gt_boxes, gt_labels):
            for _ in range(int(rng.integers(0, 3))):
                size = np.array([b[2] - b[0], b[3] - b[1]] * 2)
                boxes.append(np.asarray(b) + rng.normal(0, 0.08, 4) * size)
                labels.append(lab if rng.random() < 0.85 else int(rng.integers(num_classes)))
        num_clutter = 150 if (many_dets_image and img_id == 1) else int(rng.integers(0, 6))
        for _ in range(num_clutter):
            s = rng.uniform(5, 120, 2)
            p = rng.uniform(0, 1, 2) * ([w_img, h_img] - s)
            boxes.append(np.r_[p, p + s])
            labels.append(int(rng.integers(num_classes)))
        preds.append(
            dict(
                img_id=img_id,
                ori_shape=(h_img, w_img),
                bboxes=_f32(np.asarray(boxes, dtype=np.float64).reshape(-1, 4)),
                scores=_f32(rng.random(len(boxes))),
                labels=np.asarray(labels, dtype=np.int64),
            )
        )
    gt = dict(images=images, annotations=anns, categories=categories)
    return gt, preds, names, cat_ids


def to_samples(preds, box_object=True):
    samples = []
    for p in preds:
        bboxes = torch.from_numpy(p['bboxes']).float()
        samples.append(
            dict(
                img_id=p['img_id'],
                ori_shape=p['ori_shape'],
                pred_instances=dict(
                    bboxes=HorizontalBoxes(bboxes) if box_object else bboxes,
                    scores=torch.from_numpy(p['scores']).float(),
                    labels=torch.from_numpy(p['labels']),
                ),
            )
        )
    return samples


def reference_eval(gt, preds, cat_ids, iou_thrs=None):
    """pycocotools COCOeval built directly, with mmdet's maxDets (100, 300, 1000)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dets = []
    for p in preds:
        for b, s, lab in zip(p['bboxes'], p['scores'], p['labels']):
            dets.append(
                dict(
                    image_id=p['img_id'],
                    category_id=cat_ids[lab],
                    bbox=[b[0], b[1], b[2] - b[0], b[3] - b[1]],
                    score=float(s),
                )
            )
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = json.loads(json.dumps(gt))
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(dets), 'bbox')
        ev.params.catIds = cat_ids
        ev.params.maxDets = [100, 300, 1000]
        if iou_thrs is not None:
            ev.params.iouThrs = np.asarray(iou_thrs)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def write_json(path, obj):
    with open(path, 'w') as f:
        json.dump(obj, f)
    return str(path)


def run_metric(metric, names, samples):
    metric.dataset_meta = dict(classes=names)
    for i in range(0, len(samples), 3):
        metric.process({}, samples[i : i + 3])
    return metric.evaluate(len(samples))


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize(
    'seed,kwargs',
    [
        (0, {}),
        (1, dict(crowd_prob=0.4, empty_every=2)),
        (2, dict(num_images=20, num_classes=8, crowd_prob=0.0, many_dets_image=False)),
    ],
)
def test_coco_metric_equals_pycocotools(tmp_path, backend, seed, kwargs):
    gt, preds, names, cat_ids = make_case(seed, **kwargs)
    ann_file = write_json(tmp_path / 'gt.json', gt)
    metric = CocoMetric(ann_file=ann_file, metric_items=ALL_ITEMS, backend=backend)
    res = run_metric(metric, names, to_samples(preds))
    ref = reference_eval(gt, preds, cat_ids)
    got = np.array([res[f'coco/bbox_{k}'] for k in ALL_ITEMS])
    assert ref.stats[0] > 0.05  # a meaningful workload, not all zeros
    np.testing.assert_allclose(got, ref.stats, rtol=0, atol=1e-6)


def test_default_items_and_plain_tensor_boxes(tmp_path):
    gt, preds, names, cat_ids = make_case(3)
    ann_file = write_json(tmp_path / 'gt.json', gt)
    res = run_metric(CocoMetric(ann_file=ann_file), names, to_samples(preds, box_object=False))
    assert list(res) == [f'coco/bbox_{k}' for k in ALL_ITEMS[:6]]
    ref = reference_eval(gt, preds, cat_ids)
    np.testing.assert_allclose([res[k] for k in res], ref.stats[:6], atol=1e-6)


def test_custom_iou_thrs_follow_pycocotools(tmp_path):
    gt, preds, names, cat_ids = make_case(4)
    ann_file = write_json(tmp_path / 'gt.json', gt)
    thrs = [0.3, 0.5, 0.7]
    res = run_metric(
        CocoMetric(ann_file=ann_file, iou_thrs=thrs, metric_items=ALL_ITEMS),
        names,
        to_samples(preds),
    )
    ref = reference_eval(gt, preds, cat_ids, iou_thrs=thrs)
    got = np.array([res[f'coco/bbox_{k}'] for k in ALL_ITEMS])
    np.testing.assert_allclose(got, ref.stats, atol=1e-6)
    assert res['coco/bbox_mAP_75'] == -1  # 0.75 is not a threshold: pycocotools gives -1


def test_classwise(tmp_path):
    gt, preds, names, cat_ids = make_case(5)
    ann_file = write_json(tmp_path / 'gt.json', gt)
    res = run_metric(CocoMetric(ann_file=ann_file, classwise=True), names, to_samples(preds))
    prec = reference_eval(gt, preds, cat_ids).eval['precision']
    for k, name in enumerate(names):
        p = prec[:, :, k, 0, -1]
        expected = p[p > -1].mean() if (p > -1).any() else float('nan')
        np.testing.assert_allclose(res[f'coco/{name}_precision'], expected, atol=1e-6)
    assert np.isnan(res[f'coco/{names[-1]}_precision'])  # the class without ground truth


def test_ground_truth_from_samples(tmp_path):
    """Without ann_file the GT comes from each sample's instances (crowd -> ignore_flag)."""
    gt, preds, names, cat_ids = make_case(6)
    samples = to_samples(preds)
    by_img = {img['id']: [] for img in gt['images']}
    for a in gt['annotations']:
        x, y, w, h = a['bbox']
        by_img[a['image_id']].append(
            dict(
                bbox=[x, y, x + w, y + h],
                bbox_label=cat_ids.index(a['category_id']),
                ignore_flag=a['iscrowd'],
            )
        )
    for s in samples:
        s['instances'] = by_img[s['img_id']]
    metric = CocoMetric(metric_items=ALL_ITEMS, outfile_prefix=str(tmp_path / 'run'))
    res = run_metric(metric, names, samples)
    # the reference: the same annotations with contiguous ids 0..K-1, area = w * h
    gt_contig = json.loads(json.dumps(gt))
    for c in gt_contig['categories']:
        c['id'] = cat_ids.index(c['id'])
    for a in gt_contig['annotations']:
        a['category_id'] = cat_ids.index(a['category_id'])
    ref = reference_eval(gt_contig, preds, list(range(len(names))))
    got = np.array([res[f'coco/bbox_{k}'] for k in ALL_ITEMS])
    np.testing.assert_allclose(got, ref.stats, atol=1e-6)
    assert osp.isfile(tmp_path / 'run.gt.json') and osp.isfile(tmp_path / 'run.bbox.json')


def test_format_only_writes_loadable_results(tmp_path):
    from pycocotools.coco import COCO

    gt, preds, names, cat_ids = make_case(7)
    ann_file = write_json(tmp_path / 'gt.json', gt)
    prefix = str(tmp_path / 'out' / 'dets')
    metric = CocoMetric(ann_file=ann_file, format_only=True, outfile_prefix=prefix)
    assert run_metric(metric, names, to_samples(preds)) == {}
    with open(prefix + '.bbox.json') as f:
        dets = json.load(f)
    assert len(dets) == sum(len(p['bboxes']) for p in preds)
    first = preds[0]
    d0 = dets[0]
    b = first['bboxes'][0]
    assert d0['image_id'] == first['img_id']
    assert d0['category_id'] == cat_ids[first['labels'][0]]  # label -> json category id
    np.testing.assert_allclose(d0['bbox'], [b[0], b[1], b[2] - b[0], b[3] - b[1]], atol=1e-4)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(ann_file)
        res = coco.loadRes(prefix + '.bbox.json')
    assert len(res.getAnnIds()) == len(dets)


def test_empty_results_log_error(tmp_path, caplog):
    gt, preds, names, _ = make_case(8)
    ann_file = write_json(tmp_path / 'gt.json', gt)
    for p in preds:
        p['bboxes'], p['scores'] = p['bboxes'][:0], p['scores'][:0]
        p['labels'] = p['labels'][:0]
    res = run_metric(CocoMetric(ann_file=ann_file), names, to_samples(preds))
    assert res == {}


def test_bad_arguments_and_inputs(tmp_path):
    with pytest.raises(KeyError, match="should be 'bbox'"):
        CocoMetric(metric='segm')
    with pytest.raises(ValueError, match='outfile_prefix must be set'):
        CocoMetric(format_only=True)
    with pytest.raises(KeyError, match='mAP_xl'):
        CocoMetric(metric_items=['mAP_xl'])
    with pytest.raises(FileNotFoundError, match='nowhere.json'):
        CocoMetric(ann_file=str(tmp_path / 'nowhere.json'))
    no_anns = write_json(
        tmp_path / 'test_dev.json',
        dict(
            images=[dict(id=1, file_name='1.jpg', width=10, height=10)],
            categories=[dict(id=1, name='class0')],
        ),
    )
    with pytest.raises(ValueError, match=r"test_dev.json: .*no \['annotations'\] list"):
        CocoMetric(ann_file=no_anns)
    CocoMetric(ann_file=no_anns, format_only=True, outfile_prefix=str(tmp_path / 'r'))
    with pytest.raises(ValueError, match='backend'):
        CocoMetric(backend='detectron')
    metric = CocoMetric()
    rotated = dict(
        img_id=1,
        ori_shape=(10, 10),
        pred_instances=dict(
            bboxes=RotatedBoxes(torch.zeros(2, 5)),
            scores=torch.ones(2),
            labels=torch.zeros(2, dtype=torch.long),
        ),
    )
    with pytest.raises(ValueError, match='HorizontalBoxes'):
        metric.process({}, [rotated])
    no_gt = dict(
        img_id=1,
        ori_shape=(10, 10),
        pred_instances=dict(
            bboxes=HorizontalBoxes(torch.zeros(0, 4)),
            scores=torch.zeros(0),
            labels=torch.zeros(0, dtype=torch.long),
        ),
    )
    with pytest.raises(KeyError, match='instances'):
        metric.process({}, [no_gt])
    gt, preds, names, _ = make_case(9)
    ann_file = write_json(tmp_path / 'gt.json', gt)
    metric = CocoMetric(ann_file=ann_file)
    metric.dataset_meta = dict(classes=['class0', 'unicorn'])
    metric.process({}, to_samples(preds[:1]))
    with pytest.raises(ValueError, match='unicorn'):
        metric.compute_metrics(metric.results)
    metric = CocoMetric(ann_file=ann_file)
    metric.dataset_meta = dict(classes=names)
    stray = to_samples(preds[:1])
    stray[0]['img_id'] = 4242
    metric.process({}, stray)
    with pytest.raises(ValueError, match=r'not images of .*gt.json: \[4242\]'):
        metric.compute_metrics(metric.results)


def _coco_eval_tool(*args):
    return subprocess.run(
        [sys.executable, osp.join(REPO, 'tools/analysis_tools/coco_eval.py'), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def test_coco_eval_tool(tmp_path):
    gt, preds, names, cat_ids = make_case(10)
    ann_file = write_json(tmp_path / 'gt.json', gt)
    dets = [
        dict(
            image_id=p['img_id'],
            category_id=cat_ids[lab],
            bbox=[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
            score=float(s),
        )
        for p in preds
        for b, s, lab in zip(p['bboxes'], p['scores'], p['labels'])
    ]
    det_file = write_json(tmp_path / 'dets.json', dets)
    out = tmp_path / 'ap.json'
    proc = _coco_eval_tool(ann_file, det_file, '--out-json', str(out), '--classwise')
    assert proc.returncode == 0, proc.stderr
    assert 'Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]' in proc.stdout
    assert 'class0' in proc.stdout  # the classwise table
    with open(out) as f:
        got = json.load(f)
    assert list(got) == [
        'bbox_mAP',
        'bbox_mAP_50',
        'bbox_mAP_75',
        'bbox_mAP_s',
        'bbox_mAP_m',
        'bbox_mAP_l',
    ]
    ref = reference_eval(gt, preds, cat_ids)
    np.testing.assert_allclose(list(got.values()), ref.stats[:6], atol=1e-6)

    dets[3]['image_id'] = 999
    bad = write_json(tmp_path / 'bad.json', dets)
    proc = _coco_eval_tool(ann_file, bad)
    assert proc.returncode == 1
    assert 'bad.json: detection 3 names image_id 999' in proc.stderr


def test_base_config_pipeline_and_perfect_predictions(tmp_path):
    """configs/_base_/datasets/coco_detection.py on a generated dataset: the val pipeline's
    ground truth fed back as predictions scores AP 1 (every box matched at every IoU)."""
    from mmengine.config import Config

    from ai4rs.datasets.preparation.synthetic_coco import CLASSES, generate_dataset
    from ai4rs.registry import DATASETS, METRICS

    root = str(tmp_path / 'syn')
    generate_dataset(root, num_train=1, num_val=4, img_size=64, seed=1)
    cfg = Config.fromfile(osp.join(REPO, 'configs/_base_/datasets/coco_detection.py'))
    ds_cfg = cfg.val_dataloader.dataset
    ds_cfg.update(
        data_root=root,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        metainfo=dict(classes=CLASSES),
    )
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope('ai4rs'):  # as the Runner does
        dataset = DATASETS.build(ds_cfg)
        samples = [dataset[i]['data_samples'] for i in range(len(dataset))]
    metric = METRICS.build(
        dict(cfg.val_evaluator, ann_file=osp.join(root, 'annotations/instances_val.json'))
    )
    metric.dataset_meta = dataset.metainfo
    for sample in samples:
        gt = sample.gt_instances
        sample.pred_instances = gt.new(
            bboxes=gt.bboxes, labels=gt.labels, scores=torch.ones(len(gt.labels))
        )
        metric.process({}, [sample.to_dict()])
    res = metric.evaluate(len(dataset))
    assert res['coco/bbox_mAP'] == pytest.approx(1.0)
    assert res['coco/bbox_mAP_50'] == pytest.approx(1.0)


def test_backend_selection(monkeypatch):
    import importlib.util

    from ai4rs.evaluation.functional import coco_eval

    real = importlib.util.find_spec
    monkeypatch.setattr(
        coco_eval.importlib.util,
        'find_spec',
        lambda name, *a: None if name == 'faster_coco_eval' else real(name, *a),
    )
    assert resolve_backend('auto') == 'pycocotools'  # the fallback
    with pytest.raises(ImportError, match='pip install faster-coco-eval'):
        resolve_backend('faster_coco_eval')
    assert CocoMetric().backend == 'pycocotools'
    monkeypatch.undo()
    if 'faster_coco_eval' in BACKENDS:
        assert resolve_backend('auto') == 'faster_coco_eval'
