"""The commands of docs/get_started.md, README "Testing" and docs/dota.md after a tiny quick start.

As a user runs them (subprocesses, default work dir and data root, relative paths, run
from the folder that holds ``data/`` and ``work_dirs/``), with tiny settings (1 epoch, 8 + 4
images) instead of the 20-epoch run:

- the run's first screen has no per-parameter ``paramwise_options`` lines, and no "`clip`
  does nothing" warning appears;
- the drawings of the quick start and of ``tools/test.py --show-dir`` have the GT panel on the
  left: the label files' polygons drawn in their class colours;
- ``tools/analysis_tools/dota_eval.py`` on the quick start's Task1 files and the held-out
  patch labels prints its mAP.
"""

import glob
import os.path as osp
import re
import sys

import cv2
import numpy as np
import pytest

from tests.conftest import REPO_ROOT, run_cmd

CONFIG = osp.join(REPO_ROOT, 'configs', 'rotated_yolox', 'rotated_yolox_quickstart_synthetic.py')
# the quick-start config's palette, RGB
PALETTE = {'vehicle': (220, 60, 60), 'pool': (60, 120, 230), 'court': (60, 200, 90)}
ALPHA = 0.8  # DetLocalVisualizer's default box alpha


def assert_gt_panel(drawing_path, image_path, ann_path):
    """The left half of the drawing is the image with each label polygon drawn in its class
    colour: points along every edge have ``ALPHA * colour + (1 - ALPHA) * pixel``."""
    from ai4rs.datasets.dota import load_dota_labels

    image = cv2.imread(image_path).astype(np.float64)  # BGR
    drawing = cv2.imread(drawing_path).astype(np.float64)
    h, w = image.shape[:2]
    assert drawing.shape == (h, 2 * w, 3), 'expected GT | predictions side by side'
    gt_panel = drawing[:, :w]
    labels = load_dota_labels(ann_path)
    assert len(labels) > 0
    hits = total = 0
    for poly, name in zip(labels.polygons, labels.names):
        corners = np.asarray(poly).reshape(4, 2)
        colour_bgr = np.array(PALETTE[name][::-1], np.float64)
        for k in range(4):
            a, b = corners[k], corners[(k + 1) % 4]
            for t in (0.3, 0.5, 0.7):
                x, y = np.rint(a + (b - a) * t).astype(int)
                if not (0 <= x < w and 0 <= y < h):
                    continue
                expected = ALPHA * colour_bgr + (1 - ALPHA) * image[y, x]
                total += 1
                hits += np.abs(gt_panel[y, x] - expected).max() <= 15
    assert total >= 12 and hits >= 0.9 * total, f'{hits} of {total} edge points drawn'


@pytest.mark.slow
def test_tiny_quickstart_then_documented_commands(tmp_path):
    tiny = ['--epochs', '1', '--num-train', '8', '--num-val', '4']
    proc = run_cmd([sys.executable, osp.join(REPO_ROOT, 'tools', 'quickstart.py'), *tiny], tmp_path)
    output = proc.stdout + proc.stderr
    first_screen = output.splitlines()[:60]
    assert not [line for line in first_screen if 'paramwise_options' in line]
    assert 'paramwise_options' not in output
    assert 'paramwise_cfg: options set for 160 parameters: weight_decay=0.0 (160)' in output
    assert 'does nothing in `RotatedBoxes`' not in output
    assert 'ground truth not drawn' not in output

    data = tmp_path / 'data' / 'synthetic_dota' / 'val'
    drawings = sorted(glob.glob(str(tmp_path / 'work_dirs/quickstart/*/predictions/*.png')))
    assert len(drawings) == 4
    for drawing in drawings[:2]:
        name = osp.splitext(osp.basename(drawing))[0]
        assert_gt_panel(
            drawing, str(data / 'images' / f'{name}.png'), str(data / 'annfiles' / f'{name}.txt')
        )

    # get_started.md / README "Testing": tools/test.py ... --show-dir vis draws GT | predictions
    proc = run_cmd(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools', 'test.py'),
            CONFIG,
            'work_dirs/quickstart/epoch_1.pth',
            '--show-dir',
            'vis',
            '--work-dir',
            'work_dirs/test',
        ],
        tmp_path,
    )
    assert 'paramwise_options' not in proc.stdout + proc.stderr
    shown = sorted(glob.glob(str(tmp_path / 'work_dirs/test/*/vis/*.png')))
    assert len(shown) == 4
    name = osp.splitext(osp.basename(shown[0]))[0]
    assert_gt_panel(
        shown[0], str(data / 'images' / f'{name}.png'), str(data / 'annfiles' / f'{name}.txt')
    )

    # dota.md: evaluating one's own Task1 results offline, here against the patch labels
    (task1_zip,) = glob.glob(str(tmp_path / 'work_dirs/quickstart/*/Task1/Task1.zip'))
    task1 = osp.relpath(osp.dirname(task1_zip), tmp_path)  # work_dirs/quickstart/TIMESTAMP/Task1
    proc = run_cmd(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'dota_eval.py'),
            '--det-dir',
            task1,
            '--ann-dir',
            'data/synthetic_dota/val/annfiles',
            '--mode',
            'devkit',
            '--iou-thr',
            '0.5',
            '--out-json',
            'val_ap.json',
        ],
        tmp_path,
    )
    mean_ap = re.search(r'^mAP: ([0-9.]+)$', proc.stdout, re.M)
    assert mean_ap is not None, proc.stdout + proc.stderr
    assert 0.0 <= float(mean_ap.group(1)) <= 1.0
    # the quick start's classes, from its Task1 files
    assert f'classes (the Task1 files of {task1}): court, pool, vehicle' in proc.stderr
    assert 'are patches of img_split.py: evaluating on their 4 images' in proc.stderr
