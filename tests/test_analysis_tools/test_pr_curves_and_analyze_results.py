"""pr_curves.py and analyze_results.py on a real ``tools/test.py --out`` pickle of the rotated
YOLOX quick-start config (4 synthetic images, a checkpoint whose box branch is zeroed so that
every prediction is a 2-stride square at its grid point: real matches at IoU 0.1)."""

import math
import os.path as osp
import re
import sys

import numpy as np
import pytest
import torch

from ai4rs.datasets.preparation.synthetic_dota import generate_dataset
from tests.conftest import REPO_ROOT, run_cmd

QUICKSTART = osp.join(
    REPO_ROOT, 'configs', 'rotated_yolox', 'rotated_yolox_quickstart_synthetic.py'
)
TOOLS = osp.join(REPO_ROOT, 'tools')


def _grid_checkpoint(path):
    from ai4rs.registry import MODELS
    from ai4rs.utils.config import load_config
    from ai4rs.utils.setup_env import register_all_modules

    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(load_config(QUICKSTART).model)
    state = model.state_dict()
    for key, value in state.items():
        if 'multi_level_conv_reg' in key or 'multi_level_conv_ang' in key:
            value.zero_()
            if 'multi_level_conv_reg' in key and key.endswith('bias'):
                value[2:] = math.log(2)  # w = h = 2 * stride, angle 0
    torch.save(dict(state_dict=state), path)


@pytest.fixture(scope='module')
def rotated_run(tmp_path_factory):
    root = tmp_path_factory.mktemp('analysis')
    generate_dataset(str(root / 'data'), num_train=1, num_val=4)
    _grid_checkpoint(str(root / 'grid.pth'))
    options = [
        f'test_dataloader.dataset.data_root={root / "data"}/',
        'test_evaluator.iou_thrs=[0.1,0.5]',
    ]
    proc = run_cmd(
        [
            sys.executable,
            osp.join(TOOLS, 'test.py'),
            QUICKSTART,
            str(root / 'grid.pth'),
            '--work-dir',
            str(root / 'work'),
            '--out',
            str(root / 'results.pkl'),
            '--cfg-options',
            *options,
            'test_dataloader.num_workers=0',
            'test_dataloader.persistent_workers=False',
            'model.test_cfg.score_thr=0.0',
        ],
        cwd=root,
    )
    return root, options, proc.stdout + proc.stderr


def _logged_class_aps(log, thr):
    """The per-class APs of tools/test.py's table at IoU ``thr`` (3 decimals, as strings)."""
    table = log.split(f'iou_thr: {thr} ')[1].split('iou_thr:')[0]
    rows = re.findall(
        r'\|\s*(vehicle|pool|court)\s*\|\s*\d+\s*\|\s*\d+\s*\|[^|]*\|\s*([0-9.]+)', table
    )
    return dict(rows)


@pytest.mark.slow
def test_pr_curves_tool_gives_the_metric_ap_of_the_test_run(rotated_run):
    from matplotlib.figure import Figure
    from PIL import Image

    from ai4rs.evaluation.analysis import build_offline_metric, evaluate_pr_curves
    from ai4rs.evaluation.functional import curve_ap
    from ai4rs.evaluation.offline import load_offline_results
    from ai4rs.visualization.pr_curves import draw_pr_curves

    root, options, log = rotated_run
    logged = _logged_class_aps(log, 0.1)
    assert set(logged) == {'vehicle', 'pool', 'court'}
    out = root / 'pr.png'
    proc = run_cmd(
        [
            sys.executable,
            osp.join(TOOLS, 'analysis_tools', 'pr_curves.py'),
            QUICKSTART,
            str(root / 'results.pkl'),
            '--out',
            str(out),
            '--iou-thr',
            '0.1',
            '--cfg-options',
            options[0],
        ],
        cwd=root,
    )
    printed = dict(re.findall(r'^(\w+) \(AP ([0-9.]+)\)$', proc.stdout, re.M))
    assert printed == logged  # the legend's APs are the test run's, class by class
    with Image.open(out) as im:
        pixels = np.asarray(im.convert('RGB'))
    assert pixels.shape == (480, 640, 3)
    assert (pixels.min(axis=2) < 200).mean() > 0.01

    # in-process: the curves' area by the metric's rule is the metric's AP, and the mean is
    # the test run's dota/AP10 (logged with 4 decimals)
    offline = load_offline_results(QUICKSTART, str(root / 'results.pkl'), _opts(root))
    metric = build_offline_metric(offline.cfg, offline.dataset_meta, 0.1)
    values, curves = evaluate_pr_curves(metric, offline.samples, 0.1)
    lines = draw_pr_curves(Figure().add_subplot(1, 1, 1), curves)
    for curve, line in zip(curves, lines):
        assert curve_ap(line.get_xdata(), line.get_ydata(), curve.rule) == pytest.approx(curve.ap)
    assert max(c.ap for c in curves) > 0  # real matches, not an all-zero case
    logged_ap10 = float(re.search(r'dota/AP10: ([0-9.]+)', log).group(1))
    assert values['dota/AP10'] == pytest.approx(logged_ap10, abs=5e-5)
    with_gt = [c.ap for c in curves if c.num_gts > 0]
    assert values['dota/AP10'] == pytest.approx(np.mean(with_gt), abs=1e-12)


def _opts(root, iou_thrs=None):
    """The in-process form of the tools' --cfg-options."""
    opts = {'test_dataloader.dataset.data_root': f'{root / "data"}/'}
    if iou_thrs is not None:
        opts['test_evaluator.iou_thrs'] = iou_thrs
    return opts


@pytest.mark.slow
def test_analyze_results_tool_draws_best_and_worst_images(rotated_run):
    from PIL import Image

    from ai4rs.evaluation.analysis import build_offline_metric, per_image_ap
    from ai4rs.evaluation.offline import load_offline_results

    root, options, _ = rotated_run
    show = root / 'show'
    run_cmd(
        [
            sys.executable,
            osp.join(TOOLS, 'analysis_tools', 'analyze_results.py'),
            QUICKSTART,
            str(root / 'results.pkl'),
            str(show),
            '--topk',
            '2',
            '--show-score-thr',
            '0.3',
            '--cfg-options',
            *options,
        ],
        cwd=root,
    )
    offline = load_offline_results(QUICKSTART, str(root / 'results.pkl'), _opts(root, [0.1, 0.5]))
    metric = build_offline_metric(offline.cfg, offline.dataset_meta)
    aps = per_image_ap(metric, offline.samples)
    stems = [osp.splitext(osp.basename(s['img_path']))[0] for s in offline.samples]
    order = np.argsort(aps, kind='stable')
    expected = {
        'good': {f'{stems[i]}_{round(float(aps[i]), 3)}.png' for i in order[::-1][:2]},
        'bad': {f'{stems[i]}_{round(float(aps[i]), 3)}.png' for i in order[:2]},
    }
    for folder, names in expected.items():
        files = sorted(p.name for p in (show / folder).iterdir())
        assert set(files) == names
        for name in files:
            with Image.open(show / folder / name) as im:
                assert im.size == (2 * 256, 256)  # GT | predictions of a 256 x 256 image
                assert np.asarray(im).std() > 0
    assert len(set(np.round(aps, 6))) > 1  # the images are ranked, not all equal


# ---------------------------------------------------------------- horizontal (COCO)
COCO_QUICKSTART = osp.join(
    REPO_ROOT, 'configs', 'yolo_world_v2', 'yolo_world_v2_quickstart_synthetic.py'
)


def _coco_predictions(data, seed=0):
    """A results pickle as tools/test.py --out writes it for the val images: each object's
    box shifted a little (a few boxes a lot, some dropped), plus false positives."""
    import json
    import pickle

    rng = np.random.default_rng(seed)
    with open(data / 'annotations' / 'instances_val.json') as f:
        coco = json.load(f)
    cat_index = {c['id']: i for i, c in enumerate(coco['categories'])}
    samples = []
    for img in coco['images']:
        boxes, labels = [], []
        for a in coco['annotations']:
            if a['image_id'] != img['id'] or rng.uniform() < 0.15:
                continue
            x, y, w, h = a['bbox']
            shift = rng.uniform(-0.3, 0.3, size=2) * [w, h] * (1 if rng.uniform() < 0.8 else 3)
            boxes.append([x + shift[0], y + shift[1], x + w + shift[0], y + h + shift[1]])
            labels.append(cat_index[a['category_id']])
        for _ in range(2):  # false positives
            x, y = rng.uniform(0, img['width'] - 40, size=2)
            boxes.append([x, y, x + 30, y + 30])
            labels.append(int(rng.integers(len(cat_index))))
        samples.append(
            dict(
                img_id=img['id'],
                img_path=str(data / 'val' / img['file_name']),
                ori_shape=(img['height'], img['width']),
                pred_instances=dict(
                    bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                    scores=torch.tensor(rng.uniform(0.05, 1.0, size=len(boxes))).float(),
                    labels=torch.tensor(labels, dtype=torch.int64),
                ),
            )
        )
    with open(data.parent / 'coco_results.pkl', 'wb') as f:
        pickle.dump(samples, f)
    return coco, samples


def _pycocotools_eval(ann_file, samples, names, img_ids=None):
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(ann_file)
        cat_ids = [next(c['id'] for c in gt.dataset['categories'] if c['name'] == n) for n in names]
        dets = []
        for s in samples:
            p = s['pred_instances']
            for b, sc, lb in zip(p['bboxes'].tolist(), p['scores'].tolist(), p['labels'].tolist()):
                dets.append(
                    dict(
                        image_id=s['img_id'],
                        bbox=[b[0], b[1], b[2] - b[0], b[3] - b[1]],
                        score=sc,
                        category_id=cat_ids[lb],
                    )
                )
        ev = COCOeval(gt, gt.loadRes(dets), 'bbox')
        ev.params.catIds = cat_ids
        if img_ids is not None:
            ev.params.imgIds = img_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


@pytest.mark.slow
def test_coco_tools_on_a_results_pickle_agree_with_pycocotools(tmp_path):
    from PIL import Image

    from ai4rs.datasets.preparation.synthetic_coco import generate_dataset as generate_coco

    data = tmp_path / 'data'
    generate_coco(str(data), num_train=1, num_val=5, img_size=128)
    coco, samples = _coco_predictions(data)
    ann_file = str(data / 'annotations' / 'instances_val.json')
    options = [
        f'test_dataloader.dataset.dataset.data_root={data}/',
        f'test_dataloader.dataset.class_text_path={data}/texts/class_texts.json',
        f'test_evaluator.ann_file={ann_file}',
    ]
    proc = run_cmd(
        [
            sys.executable,
            osp.join(TOOLS, 'analysis_tools', 'pr_curves.py'),
            COCO_QUICKSTART,
            str(tmp_path / 'coco_results.pkl'),
            '--out',
            str(tmp_path / 'pr.png'),
            '--cfg-options',
            *options,
        ],
        cwd=tmp_path,
    )
    names = [c['name'] for c in coco['categories']]
    ev = _pycocotools_eval(ann_file, samples, names)
    printed = dict(re.findall(r'^(.+) \(AP ([0-9.]+)\)$', proc.stdout, re.M))
    expected = {}
    for k, name in enumerate(names):
        p = ev.eval['precision'][0, :, k, 0, -1]
        expected[name] = f'{p[p > -1].mean():.3f}'
    assert printed == expected
    assert any(float(v) > 0.1 for v in printed.values())
    with Image.open(tmp_path / 'pr.png') as im:
        assert im.size == (640, 480)

    run_cmd(
        [
            sys.executable,
            osp.join(TOOLS, 'analysis_tools', 'analyze_results.py'),
            COCO_QUICKSTART,
            str(tmp_path / 'coco_results.pkl'),
            str(tmp_path / 'show'),
            '--topk',
            '2',
            '--cfg-options',
            *options,
        ],
        cwd=tmp_path,
    )
    # each image's bbox mAP by pycocotools on that image alone
    per_image = {}
    for s in samples:
        ap = _pycocotools_eval(ann_file, [s], names, img_ids=[s['img_id']]).stats[0]
        per_image[osp.splitext(osp.basename(s['img_path']))[0]] = ap
    ranked = sorted(per_image, key=lambda k: per_image[k])
    for folder, stems in (('good', ranked[::-1][:2]), ('bad', ranked[:2])):
        files = sorted(p.name for p in (tmp_path / 'show' / folder).iterdir())
        assert files == sorted(f'{s}_{round(float(per_image[s]), 3)}.jpg' for s in stems)
        for name in files:
            with Image.open(tmp_path / 'show' / folder / name) as im:
                assert im.size == (2 * 128, 128)


@pytest.mark.slow
def test_tools_refuse_bad_arguments_with_one_line(tmp_path):
    pr = osp.join(TOOLS, 'analysis_tools', 'pr_curves.py')
    proc = run_cmd(
        [sys.executable, pr, QUICKSTART, 'missing.pkl', '--out', 'pr.png'],
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode != 0 and 'results file not found: missing.pkl' in proc.stderr
    assert 'Traceback' not in proc.stderr
    analyze = osp.join(TOOLS, 'analysis_tools', 'analyze_results.py')
    proc = run_cmd(
        [sys.executable, analyze, QUICKSTART, 'r.pkl', 'show', '--topk', '0'],
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode != 0 and '--topk must be a positive number' in proc.stderr


def test_open_vocabulary_rotated_family_in_process(tmp_path):
    """The open-vocabulary rotated config (DOTA data in a MultiModalDataset): predictions equal
    to image 0's ground truth and none elsewhere. By hand: image 0 has mAP 1 and the others 0;
    class c's curve reaches recall n0_c / n_c at precision 1, so its 11-point AP counts the
    thresholds 0, 0.1, ... that recall reaches."""
    import json
    import pickle

    from ai4rs.evaluation.analysis import build_offline_metric, evaluate_pr_curves, per_image_ap
    from ai4rs.evaluation.functional.mean_ap import _VOC07_RECALLS
    from ai4rs.evaluation.offline import load_offline_results
    from ai4rs.structures.bbox import boxes_from_tensor

    config = osp.join(
        REPO_ROOT, 'configs', 'yolo_world_rotated', 'yolo_world_rotated_quickstart_synthetic.py'
    )
    data = tmp_path / 'data'
    generate_dataset(str(data), num_train=1, num_val=3)
    classes = ['vehicle', 'pool', 'court']
    (data / 'texts').mkdir()
    (data / 'texts' / 'class_texts.json').write_text(json.dumps([[c] for c in classes]))
    stems = sorted(p.stem for p in (data / 'val' / 'annfiles').iterdir())
    samples, counts = [], np.zeros((len(stems), 3))
    for i, stem in enumerate(stems):
        lines = (data / 'val' / 'annfiles' / f'{stem}.txt').read_text().split('\n')
        rows = [line.split() for line in lines if len(line.split()) >= 9]
        polys = torch.tensor([[float(v) for v in r[:8]] for r in rows], dtype=torch.float32)
        lab = torch.tensor([classes.index(r[8]) for r in rows], dtype=torch.int64)
        counts[i] = np.bincount(lab.numpy(), minlength=3)
        if i > 0:
            polys, lab = polys[:0], lab[:0]
        rboxes = boxes_from_tensor(polys.reshape(-1, 8), 'qbox').convert_to('rbox').tensor
        samples.append(
            dict(
                img_id=stem,
                img_path=str(data / 'val' / 'images' / f'{stem}.png'),
                ori_shape=(256, 256),
                pred_instances=dict(
                    bboxes=rboxes, scores=torch.linspace(0.9, 0.5, len(lab)), labels=lab
                ),
            )
        )
    assert 0 < counts[0].sum() < counts.sum()  # a part of the objects found: recall < 1
    with open(tmp_path / 'r.pkl', 'wb') as f:
        pickle.dump(samples, f)
    opts = {
        'test_dataloader.dataset.dataset.data_root': f'{data}/',
        'test_dataloader.dataset.class_text_path': str(data / 'texts' / 'class_texts.json'),
    }
    offline = load_offline_results(config, str(tmp_path / 'r.pkl'), opts)
    metric = build_offline_metric(offline.cfg, offline.dataset_meta, 0.5)
    values, curves = evaluate_pr_curves(metric, offline.samples, 0.5)
    for c, curve in enumerate(curves):
        recall = counts[0, c] / counts[:, c].sum()
        expected = (recall >= _VOC07_RECALLS).sum() / 11 if counts[0, c] else 0.0
        assert curve.ap == pytest.approx(expected, abs=1e-9), curve.name
        assert curve.num_gts == counts[:, c].sum()
    expected_aps = [1.0] + [0.0] * (len(stems) - 1)
    np.testing.assert_allclose(per_image_ap(metric, offline.samples), expected_aps, atol=1e-6)
