"""tools/analysis_tools/dota_eval.py end to end, and split -> merge -> devkit evaluation."""

import glob
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DOTA_EVAL = osp.join(REPO, 'tools', 'analysis_tools', 'dota_eval.py')
IMG_SPLIT = osp.join(REPO, 'tools', 'data', 'dota', 'split', 'img_split.py')

# AP of TP, FP, TP over 2 GTs (recall .5 .5 1, precision 1 .5 2/3), VOC07 11 points
AP11_TP_FP_TP = (6 + 5 * (2 / 3)) / 11


def q(x, y, w, h):
    return [x, y, x + w, y, x + w, y + h, x, y + h]


def fmt(poly):
    return ' '.join(f'{v:g}' for v in poly)


def write(path, lines):
    with open(path, 'w') as f:
        f.write(''.join(line + '\n' for line in lines))


def make_case(tmp_path):
    ann = tmp_path / 'labelTxt'
    det = tmp_path / 'dets'
    ann.mkdir(parents=True)
    det.mkdir()
    write(
        ann / 'img1.txt',
        [
            'imagesource:GoogleEarth',
            'gsd:0.146',
            f'{fmt(q(0, 0, 10, 10))} plane 0',
            f'{fmt(q(20, 20, 10, 5))} ship 1',
        ],
    )
    write(ann / 'img2.txt', [f'{fmt(q(0, 0, 10, 10))} plane'])  # no difficulty field: 0
    write(ann / 'img3.txt', [])  # no objects
    write(
        det / 'Task1_plane.txt',
        [
            f'img1 0.9 {fmt(q(0, 0, 10, 10))}',
            f'img2 0.8 {fmt(q(5, 0, 10, 10))}',  # IoU 1/3: FP
            f'img2 0.7 {fmt(q(0, 0, 10, 10))}',
        ],
    )
    write(det / 'Task1_ship.txt', [f'img1 0.6 {fmt(q(20, 20, 10, 5))}'])  # on the difficult one
    return str(det), str(ann)


def run_cli(*args):
    return subprocess.run(
        [sys.executable, DOTA_EVAL, *args], capture_output=True, text=True, cwd=REPO, timeout=120
    )


def _load_tool(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def dota_eval():
    return _load_tool(DOTA_EVAL, 'dota_eval_tool')


def test_cli_end_to_end_devkit(tmp_path):
    det, ann = make_case(tmp_path)
    out_json = str(tmp_path / 'ap.json')
    proc = run_cli(
        '--det-dir',
        det,
        '--ann-dir',
        ann,
        '--mode',
        'devkit',
        '--iou-thr',
        '0.5',
        '--classes',
        'plane',
        'ship',
        '--out-json',
        out_json,
    )
    assert proc.returncode == 0, proc.stderr
    assert 'plane' in proc.stdout and 'mAP' in proc.stdout
    with open(out_json) as f:
        result = json.load(f)
    assert set(result) == {'mAP', 'AP'}
    # devkit: the difficult ship is ignored, so ship has no GT and AP 0, still averaged
    assert result['AP']['plane'] == pytest.approx(AP11_TP_FP_TP)
    assert result['AP']['ship'] == 0
    assert result['mAP'] == pytest.approx(AP11_TP_FP_TP / 2)


def test_mmrotate_mode_and_default_classes(tmp_path, dota_eval):
    det, ann = make_case(tmp_path)
    out_json = str(tmp_path / 'ap.json')
    # mmrotate: nothing ignored by default (diff_thr 100): the ship det is a TP
    dota_eval.main(
        [
            '--det-dir',
            det,
            '--ann-dir',
            ann,
            '--mode',
            'mmrotate',
            '--classes',
            'plane',
            'ship',
            '--out-json',
            out_json,
        ]
    )
    with open(out_json) as f:
        result = json.load(f)
    assert result['AP']['ship'] == pytest.approx(1.0)
    assert result['mAP'] == pytest.approx((AP11_TP_FP_TP + 1) / 2)
    # ... and with the devkit's choice of ignoring difficult objects
    result = dota_eval.main(
        [
            '--det-dir',
            det,
            '--ann-dir',
            ann,
            '--mode',
            'mmrotate',
            '--classes',
            'plane',
            'ship',
            '--diff-thr',
            '0',
        ]
    )
    assert result['AP']['ship'] == 0 and result['mAP'] == pytest.approx(AP11_TP_FP_TP)
    # default classes are DOTA v1.0 (15); missing Task1 files count as no detections
    result = dota_eval.main(['--det-dir', det, '--ann-dir', ann])
    assert len(result['AP']) == 15
    assert result['mAP'] == pytest.approx(AP11_TP_FP_TP / 15)
    assert all(0 <= v <= 1 for v in result['AP'].values())
    assert (
        len(dota_eval.main(['--det-dir', det, '--ann-dir', ann, '--dataset-version', '2.0'])['AP'])
        == 18
    )
    # area AP: recall .5 .5 1, precision 1 .5 2/3
    result = dota_eval.main(
        ['--det-dir', det, '--ann-dir', ann, '--classes', 'plane', 'ship', '--eval-mode', 'area']
    )
    assert result['AP']['plane'] == pytest.approx(0.5 + 0.5 * 2 / 3)


def _error(dota_eval, *args):
    with pytest.raises(SystemExit) as info:
        dota_eval.main(list(args))
    return str(info.value)


def test_errors_name_file_and_line(tmp_path, dota_eval):
    det, ann = make_case(tmp_path / 'a')
    write(osp.join(ann, 'img2.txt'), [f'{fmt(q(0, 0, 10, 10))} plane 0', '1 2 3 plane 0'])
    assert 'img2.txt, line 2' in _error(dota_eval, '--det-dir', det, '--ann-dir', ann)
    det, ann = make_case(tmp_path / 'b')
    with open(osp.join(det, 'Task1_ship.txt'), 'a') as f:
        f.write('img1 0.5 1 2 3\n')
    assert 'Task1_ship.txt, line 2' in _error(
        dota_eval, '--det-dir', det, '--ann-dir', ann, '--classes', 'plane', 'ship'
    )
    det, ann = make_case(tmp_path / 'c')
    with open(osp.join(det, 'Task1_ship.txt'), 'a') as f:
        f.write(f'img9 0.5 {fmt(q(0, 0, 1, 1))}\n')
    msg = _error(dota_eval, '--det-dir', det, '--ann-dir', ann, '--classes', 'plane', 'ship')
    assert 'Task1_ship.txt, line 2' in msg and "'img9'" in msg
    msg = _error(dota_eval, '--det-dir', det, '--ann-dir', ann, '--classes', 'plane')
    assert "img1.txt, line 4: unknown class 'ship'" in msg
    assert 'not a folder' in _error(
        dota_eval, '--det-dir', det, '--ann-dir', str(tmp_path / 'nowhere')
    )


def test_patch_labels_merged_onto_images(tmp_path, dota_eval):
    """Two overlapping 100-px patches of P1 (x 0 and 50) share object A (difficulty 2 where
    the window cuts it); P2 is one patch at (0, 100). Detections name the images."""
    ann, det = tmp_path / 'annfiles', tmp_path / 'Task1'
    ann.mkdir()
    det.mkdir()
    a = q(60, 10, 10, 5)
    write(ann / 'P1__100__0___0.txt', [f'{fmt(a)} ship 2', f'{fmt(q(5, 5, 20, 20))} plane 0'])
    a_in_2 = [v - 50 if i % 2 == 0 else v for i, v in enumerate(a)]
    write(ann / 'P1__100__50___0.txt', [f'{fmt(a_in_2)} ship 0', f'{fmt(q(80, 80, 9, 9))} ship 1'])
    write(ann / 'P2__100__0___100.txt', [f'{fmt(q(0, 0, 10, 10))} plane 0'])
    gts = dota_eval.merge_patch_labels(dota_eval.load_label_dir(str(ann), ['plane', 'ship']))
    assert sorted(gts) == ['P1', 'P2']
    np.testing.assert_allclose(
        gts['P1']['polygons'], [a, q(5, 5, 20, 20), q(130, 80, 9, 9)], atol=1e-9
    )
    assert gts['P1']['labels'].tolist() == [1, 0, 1]
    assert gts['P1']['difficulties'].tolist() == [0, 0, 1]  # A: the whole copy's difficulty
    np.testing.assert_allclose(gts['P2']['polygons'], [q(0, 100, 10, 10)])

    write(
        det / 'Task1_plane.txt',
        [f'P1 0.9 {fmt(q(5, 5, 20, 20))}', f'P2 0.8 {fmt(q(0, 100, 10, 10))}'],
    )
    write(det / 'Task1_ship.txt', [f'P1 0.7 {fmt(a)}'])
    # the documented command, without --classes: plane and ship are DOTA-v1.0 classes
    result = dota_eval.main(['--det-dir', str(det), '--ann-dir', str(ann)])
    # devkit: the difficult ship at (130, 80) is ignored; every other object found once
    assert result['AP']['plane'] == pytest.approx(1.0)
    assert result['AP']['ship'] == pytest.approx(1.0)
    assert len(result['AP']) == 15  # DOTA-v1.0's classes, as before
    # per-patch detections are evaluated per patch, as before
    write(det / 'Task1_ship.txt', [f'P1__100__0___0 0.7 {fmt(a)}'])
    write(det / 'Task1_plane.txt', [])
    result = dota_eval.main(
        ['--det-dir', str(det), '--ann-dir', str(ann), '--classes', 'plane', 'ship']
    )
    assert result['AP']['plane'] == 0  # 2 GTs (patch P1 at 0, P2), no detection
    # its class files name no DOTA class: the classes are the files' own
    write(det / 'Task1_ship.txt', [])
    (det / 'Task1_ship.txt').rename(det / 'Task1_boat.txt')
    assert dota_eval.default_classes(str(det)) == (['boat', 'plane'], f'the Task1 files of {det}')


def _rect_poly(cx, cy, w, h, t):
    v1 = np.array([w / 2 * np.cos(t), w / 2 * np.sin(t)])
    v2 = np.array([-h / 2 * np.sin(t), h / 2 * np.cos(t)])
    c = np.array([cx, cy])
    return np.concatenate([c + v1 + v2, c + v1 - v2, c - v1 - v2, c - v1 + v2]).tolist()


@pytest.mark.skipif(
    not osp.exists(IMG_SPLIT),
    reason='tools/data/dota/split/img_split.py (another helper) does not exist',
)
def test_split_gt_as_detections_merge_gives_ap_1(tmp_path, dota_eval):
    import cv2
    import torch

    from ai4rs.datasets.dota import load_dota_labels
    from ai4rs.evaluation import DOTAMetric
    from ai4rs.structures.bbox import qbox2rbox

    classes = ('plane', 'ship', 'harbor')
    img_dir, ann_dir = tmp_path / 'images', tmp_path / 'labelTxt'
    img_dir.mkdir()
    ann_dir.mkdir()
    rng = np.random.default_rng(0)
    # well separated rotated rectangles (<= 12 px) on a grid; windows of 64 with a gap of 24
    # hold every object whole in at least one patch, many objects lie in several patches
    for name, (w, h) in dict(P0001=(150, 120), P0002=(60, 50)).items():
        cv2.imwrite(str(img_dir / f'{name}.png'), np.zeros((h, w, 3), np.uint8))
        lines = []
        for cy in range(10, h - 8, 20):
            for cx in range(10, w - 8, 20):
                poly = _rect_poly(
                    cx + rng.uniform(-1, 1),
                    cy + rng.uniform(-1, 1),
                    rng.uniform(6, 12),
                    rng.uniform(3, 6),
                    rng.uniform(-1.5, 1.5),
                )
                cls = classes[rng.integers(3)]
                lines.append(f'{fmt(np.round(poly, 1))} {cls} {int(rng.uniform() < 0.1)}')
        write(ann_dir / f'{name}.txt', ['imagesource:GoogleEarth', 'gsd:0.2'] + lines)
    save_dir = tmp_path / 'split'
    proc = subprocess.run(
        [
            sys.executable,
            IMG_SPLIT,
            '--img-dirs',
            str(img_dir),
            '--ann-dirs',
            str(ann_dir),
            '--sizes',
            '64',
            '--gaps',
            '24',
            '--save-dir',
            str(save_dir),
            '--nproc',
            '1',
            '--no-progress',
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    patch_files = sorted(glob.glob(str(save_dir / 'annfiles' / '*.txt')))
    assert len(patch_files) > 6

    # the patch ground truth as rbox predictions (score 1), merged back onto the full images
    metric = DOTAMetric(merge_patches=True, outfile_prefix=str(tmp_path / 'merged'))
    metric.dataset_meta = dict(classes=classes)
    samples, num_patch_objects = [], 0
    for path in patch_files:
        labels = load_dota_labels(path)
        num_patch_objects += len(labels)
        rboxes = (
            qbox2rbox(torch.from_numpy(labels.polygons).float())
            if len(labels)
            else torch.zeros((0, 5))
        )
        samples.append(
            dict(
                img_id=osp.splitext(osp.basename(path))[0],
                pred_instances=dict(
                    bboxes=rboxes,
                    scores=torch.ones(len(labels)),
                    labels=torch.tensor(
                        [classes.index(n) for n in labels.names], dtype=torch.int64
                    ),
                ),
            )
        )
    metric.process({}, samples)
    metric.evaluate(len(samples))

    result = dota_eval.evaluate_task1(
        str(tmp_path / 'merged'), str(ann_dir), classes, mode='devkit', logger='silent'
    )
    num_objects = sum(len(load_dota_labels(str(p))) for p in ann_dir.iterdir())
    assert num_patch_objects > num_objects  # objects shared by patches were merged
    assert result['mAP'] == pytest.approx(1.0)
    assert all(ap == pytest.approx(1.0) for ap in result['AP'].values())
    n_lines = sum(
        len(open(p).readlines()) for p in glob.glob(str(tmp_path / 'merged' / 'Task1_*.txt'))
    )
    assert n_lines == num_objects  # exactly one detection per object

    # the patch labels, merged back onto the images, are the original labels
    merged_gt = dota_eval.merge_patch_labels(
        dota_eval.load_label_dir(str(save_dir / 'annfiles'), classes)
    )
    original = dota_eval.load_label_dir(str(ann_dir), classes)
    assert sorted(merged_gt) == sorted(original)
    for name, gt in original.items():
        key = lambda g: sorted(  # noqa: E731
            zip(
                np.round(g['polygons'], 6).tolist(),
                g['labels'].tolist(),
                g['difficulties'].tolist(),
            )
        )
        assert key(merged_gt[name]) == key(gt)
    # so evaluating against them gives the same as against the originals
    result = dota_eval.evaluate_task1(
        str(tmp_path / 'merged'),
        str(save_dir / 'annfiles'),
        classes,
        mode='devkit',
        logger='silent',
    )
    assert result['mAP'] == pytest.approx(1.0)
    assert os.path.isfile(tmp_path / 'merged' / 'merged.zip')
