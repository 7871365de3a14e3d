"""The open-vocabulary oriented quick start end to end (slow).

``tools/quickstart_yolo_world_rotated.py`` as a user runs it (a subprocess, default settings):
the generated DOTA-style data, a tiny CLIP, training on CPU, AP50 >= 0.85 on the held-out images
by DOTAMetric, then the demo with ``--texts``: its detections are oriented boxes named by those
texts only, and they find the demo image's objects of those classes (shapely polygon IoU against
the image's DOTA label file). Then ``tools/test.py`` on the trained checkpoint with the class list
and its texts in another order (a user config inheriting the quick start's): the same AP, class by
class (a model that ignored its texts would score 'court' with the 'vehicle' weights).
"""

import json
import os.path as osp
import re
import sys

import pytest
from shapely.geometry import Polygon

from ai4rs.structures.bbox import rbox_corners
from tests.conftest import REPO_ROOT, run_cmd

pytest.importorskip('transformers')


def _label_polygons(label_file, names):
    """{class: [shapely polygons]} of a DOTA label file, for the given class names."""
    out = {}
    with open(label_file) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 9 and parts[8] in names:
                pts = [float(v) for v in parts[:8]]
                out.setdefault(parts[8], []).append(Polygon(list(zip(pts[0::2], pts[1::2]))))
    return out


def _polygon(rbox):
    import torch

    corners = rbox_corners(torch.tensor([rbox], dtype=torch.float64))[0].tolist()
    return Polygon(corners)


def _class_table(output):
    """{class: (gts, dets, recall, ap)} and AP50 from tools/test.py's DOTAMetric output."""
    rows = re.findall(
        r'^\| (\w+)\s*\| (\d+)\s*\| (\d+)\s*\| ([0-9.]+)\s*\| ([0-9.]+)\s*\|$', output, re.M
    )
    ap50 = re.findall(r'dota/AP50: ([0-9.]+)', output)
    assert rows and ap50, output[-3000:]
    return {name: tuple(rest) for name, *rest in rows}, float(ap50[-1])


def _iou(a, b):
    inter = a.intersection(b).area
    return inter / (a.area + b.area - inter)


@pytest.mark.slow
def test_open_vocabulary_rotated_quickstart(tmp_path):
    work, data = tmp_path / 'work', tmp_path / 'data'
    texts = ['vehicle', 'pool']
    proc = run_cmd(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools', 'quickstart_yolo_world_rotated.py'),
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
    assert ap50 >= 0.85, proc.stdout[-3000:]
    drawing = re.search(r'^demo drawing: (.+)$', proc.stdout, re.M).group(1)
    assert osp.isfile(drawing)
    with open(osp.splitext(drawing)[0] + '.json') as f:
        dets = json.load(f)
    assert dets and {d['text'] for d in dets} <= set(texts)
    assert all(len(d['bbox']) == 5 for d in dets)  # (cx, cy, w, h, t)
    # the demo image (the first held-out image): every object of the two classes is found
    image = re.search(r'^demo: (.+) with the vocabulary', proc.stdout, re.M).group(1)
    name = osp.splitext(osp.basename(image))[0]
    gt = _label_polygons(data / 'val' / 'annfiles' / f'{name}.txt', texts)
    assert sum(len(v) for v in gt.values()) > 0
    confident = [d for d in dets if d['score'] >= 0.3]
    for text, polygons in gt.items():
        for polygon in polygons:
            assert any(
                d['text'] == text and _iou(_polygon(d['bbox']), polygon) >= 0.5 for d in confident
            ), (text, polygon.wkt, confident)

    # the same checkpoint, the class list and the texts in another order
    config = re.search(r'^config: (.+)$', proc.stdout, re.M).group(1)
    checkpoint = re.search(r'^checkpoint: (.+)$', proc.stdout, re.M).group(1)
    with open(data / 'texts' / 'class_texts.json') as f:
        class_texts = json.load(f)
    assert class_texts == [['vehicle'], ['pool'], ['court']]
    with open(tmp_path / 'reordered_texts.json', 'w') as f:
        json.dump(class_texts[::-1], f)
    reordered = tmp_path / 'reordered.py'
    reordered.write_text(
        f'_base_ = [{config!r}]\n'
        'test_dataloader = dict(dataset=dict(\n'
        f'    class_text_path={str(tmp_path / "reordered_texts.json")!r},\n'
        "    dataset=dict(metainfo=dict(classes=('court', 'pool', 'vehicle')))))\n"
    )
    tables = []
    for cfg, name in ((config, 'as_trained'), (str(reordered), 'reordered')):
        test = run_cmd(
            [
                sys.executable,
                osp.join(REPO_ROOT, 'tools', 'test.py'),
                cfg,
                checkpoint,
                '--work-dir',
                str(tmp_path / name),
            ],
            cwd=tmp_path,
            timeout=600,
        )
        tables.append(_class_table(test.stdout + test.stderr))
    (as_trained, ap_trained), (reordered_rows, ap_reordered) = tables
    assert list(as_trained) == ['vehicle', 'pool', 'court']
    assert list(reordered_rows) == ['court', 'pool', 'vehicle']
    assert reordered_rows == as_trained
    assert abs(ap_reordered - ap_trained) < 1e-4 and abs(ap_trained - ap50) < 1e-4
