"""The quick start end to end, and everything a user then does with its checkpoint.

One (slow) test: ``tools/quickstart.py`` trains the quick-start rotated YOLOX on
generated data on CPU and must reach AP50 >= 0.8 on the held-out images; its
checkpoint is then evaluated with ``tools/test.py``, loaded with
``init_detector``, run with ``inference_detector``, ``demo/image_demo.py`` and
sliced inference on a larger image made of four held-out images.
"""

import glob
import os.path as osp
import re
import sys
import zipfile

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import REPO_ROOT, run_cmd

CONFIG = osp.join(REPO_ROOT, 'configs', 'rotated_yolox', 'rotated_yolox_quickstart_synthetic.py')


def _gt_rboxes(ann_file):
    from ai4rs.datasets.dota import load_dota_labels
    from ai4rs.datasets.preparation.synthetic_dota import CLASSES
    from ai4rs.structures.bbox import qbox2rbox

    labels = load_dota_labels(ann_file)
    rboxes = qbox2rbox(torch.as_tensor(np.asarray(labels.polygons), dtype=torch.float32))
    cls = np.array([CLASSES.index(n) for n in labels.names], dtype=np.int64)
    return rboxes.numpy(), cls


def _ap50(pred_list, gt_list, num_classes=3):
    from ai4rs.evaluation.functional import eval_rbbox_map

    dets, anns = [], []
    for (boxes, scores, labels), (gt_boxes, gt_labels) in zip(pred_list, gt_list):
        dets.append(
            [
                np.concatenate([boxes[labels == c], scores[labels == c, None]], 1)
                for c in range(num_classes)
            ]
        )
        anns.append(
            dict(
                bboxes=gt_boxes,
                labels=gt_labels,
                bboxes_ignore=np.zeros((0, 5)),
                labels_ignore=np.zeros(0, np.int64),
            )
        )
    mean_ap, _ = eval_rbbox_map(dets, anns, iou_thr=0.5, logger='silent')
    return mean_ap


def _pred_arrays(sample):
    pred = sample.pred_instances
    return (pred.bboxes.tensor.numpy(), pred.scores.numpy(), pred.labels.numpy())


@pytest.mark.slow
def test_quickstart_then_test_tool_inference_and_demos(tmp_path):
    work, data = tmp_path / 'work', tmp_path / 'data'
    proc = run_cmd(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools', 'quickstart.py'),
            '--work-dir',
            str(work),
            '--data-root',
            str(data),
        ],
        cwd=tmp_path,
        timeout=1800,
    )
    ap50 = float(re.search(r'^AP50: ([0-9.]+)$', proc.stdout, re.M).group(1))
    assert ap50 >= 0.8, proc.stdout[-3000:]
    drawings = glob.glob(str(work / '*' / 'predictions' / '*.png'))
    assert len(drawings) == 40
    (task1_zip,) = glob.glob(str(work / '*' / 'Task1' / 'Task1.zip'))  # WORK/TIMESTAMP/Task1
    with zipfile.ZipFile(task1_zip) as z:
        assert sorted(z.namelist()) == ['Task1_court.txt', 'Task1_pool.txt', 'Task1_vehicle.txt']
    ckpt = str(work / 'epoch_20.pth')
    assert osp.isfile(ckpt)

    # the checkpoint from training evaluates the same in tools/test.py
    proc = run_cmd(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools', 'test.py'),
            CONFIG,
            ckpt,
            '--work-dir',
            str(tmp_path / 'test_work'),
            '--cfg-options',
            f'test_dataloader.dataset.data_root={data}/',
        ],
        cwd=tmp_path,
    )
    test_ap = float(re.search(r'dota/AP50: ([0-9.]+)', proc.stdout + proc.stderr).group(1))
    # the same (EMA) weights, both printed with 4 decimals: equal, not just close
    assert test_ap == pytest.approx(ap50, abs=1e-6)

    # the Python API on the held-out images
    from ai4rs.apis import inference_detector, inference_detector_by_patches, init_detector
    from ai4rs.structures.bbox import RotatedBoxes

    model = init_detector(CONFIG, ckpt, device='cpu')
    assert model.dataset_meta['classes'] == ('vehicle', 'pool', 'court')
    images = sorted(glob.glob(str(data / 'val' / 'images' / '*.png')))
    annfiles = [p.replace('/images/', '/annfiles/').replace('.png', '.txt') for p in images]
    results = inference_detector(model, images[:8])
    assert all(isinstance(r.pred_instances.bboxes, RotatedBoxes) for r in results)
    preds = [_pred_arrays(r) for r in results]
    gts = [_gt_rboxes(a) for a in annfiles[:8]]
    assert _ap50(preds, gts) >= 0.8
    from_array = inference_detector(model, cv2.imread(images[0]))
    torch.testing.assert_close(
        from_array.pred_instances.bboxes.tensor, results[0].pred_instances.bboxes.tensor
    )

    # image demo draws the predictions
    out = tmp_path / 'demo.png'
    run_cmd(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'demo', 'image_demo.py'),
            images[0],
            CONFIG,
            ckpt,
            '--out-file',
            str(out),
            '--score-thr',
            '0.3',
        ],
        cwd=tmp_path,
    )
    drawn = cv2.imread(str(out))
    assert drawn.shape == (256, 256, 3)
    assert np.abs(drawn.astype(int) - cv2.imread(images[0]).astype(int)).sum() > 0

    # sliced inference on a 512 x 512 image made of 4 held-out images, 256-px patches
    # every 192 px: objects cut by a patch border are found whole by a neighbouring patch
    big = np.zeros((512, 512, 3), np.uint8)
    big_gt, big_labels = [], []
    for k in range(4):
        y, x = divmod(k, 2)
        big[y * 256 : (y + 1) * 256, x * 256 : (x + 1) * 256] = cv2.imread(images[k])
        boxes, labels = gts[k]
        boxes = boxes.copy()
        boxes[:, 0] += x * 256
        boxes[:, 1] += y * 256
        big_gt.append(boxes)
        big_labels.append(labels)
    big_path = str(tmp_path / 'big.png')
    cv2.imwrite(big_path, big)
    merged = inference_detector_by_patches(
        model, big_path, sizes=(256,), steps=(192,), batch_size=4, progress=False
    )
    assert merged.ori_shape == (512, 512)
    big_pred = _pred_arrays(merged)
    assert _ap50([big_pred], [(np.concatenate(big_gt), np.concatenate(big_labels))]) >= 0.8
    run_cmd(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'demo', 'huge_image_demo.py'),
            big_path,
            CONFIG,
            ckpt,
            '--out-file',
            str(tmp_path / 'big_out.png'),
            '--patch-sizes',
            '256',
            '--patch-steps',
            '192',
        ],
        cwd=tmp_path,
    )
    assert cv2.imread(str(tmp_path / 'big_out.png')).shape == (512, 512, 3)

    # docs/get_started.md: the offline evaluation of the Task1 files against the held-out
    # patch labels; scored as DOTAMetric (mmrotate mode) it is the AP50 the quick start printed
    proc = run_cmd(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'dota_eval.py'),
            '--det-dir',
            osp.dirname(task1_zip),
            '--ann-dir',
            str(data / 'val' / 'annfiles'),
            '--mode',
            'mmrotate',
        ],
        cwd=tmp_path,
    )
    offline = float(re.search(r'^mAP: ([0-9.]+)$', proc.stdout, re.M).group(1))
    assert offline == pytest.approx(ap50, abs=2e-4), (offline, ap50)


def test_quickstart_saved_config_is_reused_by_test_tool(tmp_path):
    """What mmdet users do with a work dir: tools/test.py WORK/CONFIG.py WORK/epoch_N.pth.
    Each run writes its Task1 files under its own WORK/TIMESTAMP (the saved config says
    '{work_dir}/{timestamp}/Task1'); none is refused for an existing folder (before, the
    saved absolute WORK/Task1 existed and tools/test.py refused it)."""
    work, data = tmp_path / 'work', tmp_path / 'data'
    args = ['--epochs', '1', '--num-train', '8', '--num-val', '4', '--data-root', str(data)]
    quick = osp.join(REPO_ROOT, 'tools', 'quickstart.py')
    run_cmd([sys.executable, quick, '--work-dir', str(work), *args], cwd=tmp_path)
    saved = work / osp.basename(CONFIG)
    assert "outfile_prefix='{work_dir}/{timestamp}/Task1'" in saved.read_text()
    (first,) = glob.glob(str(work / '*' / 'Task1' / 'Task1.zip'))
    test_tool = [sys.executable, osp.join(REPO_ROOT, 'tools', 'test.py'), str(saved)]
    # in the quick start's own work dir (the saved config's work_dir), then in a new one
    for work_dir in (None, tmp_path / 'other'):
        extra = [] if work_dir is None else ['--work-dir', str(work_dir)]
        run_cmd([*test_tool, str(work / 'epoch_1.pth'), *extra], cwd=tmp_path)
    zips = sorted(glob.glob(str(work / '*' / 'Task1' / 'Task1.zip')))
    assert len(zips) == 2 and first in zips  # the quick start's and the test run's
    (other,) = glob.glob(str(tmp_path / 'other' / '*' / 'Task1' / 'Task1.zip'))
    with zipfile.ZipFile(first) as a, zipfile.ZipFile(other) as b:
        assert sorted(a.namelist()) == sorted(b.namelist())
        assert all(a.read(n) == b.read(n) for n in a.namelist())  # the same predictions
