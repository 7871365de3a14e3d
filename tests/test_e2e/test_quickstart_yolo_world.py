"""The open-vocabulary quick start end to end (slow).

``tools/quickstart_yolo_world.py`` (as a user runs it: a subprocess, default settings) generates
the COCO-format shapes, writes a tiny CLIP, fine-tunes the small YOLO-World v2 on CPU, must reach
AP50 >= 0.8 on the held-out images, and runs the demo with the vocabulary of ``--texts``. The
checkpoint then evaluates the same in ``tools/test.py``, and ``inference_detector`` with another
vocabulary finds the held-out image's objects of those classes (checked against its COCO json).
"""

import json
import os.path as osp
import re
import sys

import cv2
import numpy as np
import pytest

from tests.conftest import REPO_ROOT, run_cmd

pytest.importorskip('transformers')


def _iou(a, b):
    """IoU of two x1, y1, x2, y2 boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _gt(data, image_name):
    """{class name: [x1, y1, x2, y2 boxes]} of one held-out image, from its COCO json."""
    with open(data / 'annotations' / 'instances_val.json') as f:
        coco = json.load(f)
    names = {c['id']: c['name'] for c in coco['categories']}
    img_id = next(i['id'] for i in coco['images'] if i['file_name'] == image_name)
    out = {}
    for a in coco['annotations']:
        if a['image_id'] == img_id:
            x, y, w, h = a['bbox']
            out.setdefault(names[a['category_id']], []).append([x, y, x + w, y + h])
    return out


def _found(dets, gt, texts):
    """Every GT box of the vocabulary's classes matched (IoU >= 0.5) by a same-text detection."""
    return all(
        any(d['text'] == t and _iou(d['bbox'], g) >= 0.5 for d in dets)
        for t in texts
        for g in gt.get(t, [])
    )


@pytest.mark.slow
def test_open_vocabulary_quickstart_then_test_tool_and_other_vocabulary(tmp_path):
    work, data = tmp_path / 'work', tmp_path / 'data'
    texts = ['blue square', 'yellow star']
    proc = run_cmd(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools', 'quickstart_yolo_world.py'),
            '--work-dir',
            str(work),
            '--data-root',
            str(data),
            '--texts',
            ','.join(texts),
        ],
        cwd=tmp_path,
        timeout=1800,
    )
    ap50 = float(re.search(r'^AP50: ([0-9.]+)$', proc.stdout, re.M).group(1))
    assert ap50 >= 0.8, proc.stdout[-3000:]
    config = re.search(r'^config: (.+)$', proc.stdout, re.M).group(1)
    ckpt = re.search(r'^checkpoint: (.+)$', proc.stdout, re.M).group(1)
    drawing = re.search(r'^demo drawing: (.+)$', proc.stdout, re.M).group(1)

    # the demo: only the vocabulary's texts, and the image's objects of those classes found
    with open(osp.splitext(drawing)[0] + '.json') as f:
        dets = json.load(f)
    assert dets and {d['text'] for d in dets} <= set(texts)
    image = sorted((data / 'val').iterdir())[0]
    gt = _gt(data, image.name)
    assert any(t in gt for t in texts)  # the generator's first held-out image has some
    assert _found(dets, gt, texts), (dets, gt)
    drawn, original = cv2.imread(drawing), cv2.imread(str(image))
    assert drawn.shape == original.shape and np.abs(drawn.astype(int) - original).sum() > 0

    # the checkpoint evaluates the same in tools/test.py
    proc = run_cmd(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools', 'test.py'),
            config,
            ckpt,
            '--work-dir',
            str(tmp_path / 'test_work'),
        ],
        cwd=tmp_path,
    )
    test_ap = float(re.search(r'coco/bbox_mAP_50: ([0-9.]+)', proc.stdout + proc.stderr).group(1))
    # the same (EMA) weights, both printed with 4 decimals: equal, not just close
    assert test_ap == pytest.approx(ap50, abs=1e-6)

    # another vocabulary, in another order, from Python
    from ai4rs.apis import inference_detector, init_detector

    model = init_detector(config, ckpt, device='cpu')
    other = ['green triangle', 'red circle', 'blue square']
    result = inference_detector(model, str(image), texts=other)
    pred = result.pred_instances
    keep = pred.scores >= 0.3
    found = [
        dict(text=other[int(label)], bbox=box.tolist())
        for box, label in zip(pred.bboxes.tensor[keep], pred.labels[keep])
    ]
    assert found and {d['text'] for d in found} <= set(other)
    assert _found(found, gt, other), (found, gt)
