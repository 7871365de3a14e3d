"""The synthetic DOTA-style generator and tools/analysis_tools/browse_dataset.py."""

import json
import os.path as osp
import sys

import cv2
import numpy as np
import pytest

from ai4rs.datasets.preparation.synthetic_dota import CLASSES, _corners, generate_dataset
from tests.conftest import REPO_ROOT, run_cmd


def test_generator_is_deterministic_and_matches_its_labels(tmp_path):
    m1 = generate_dataset(str(tmp_path / 'a'), num_train=3, num_val=1, img_size=128, seed=3)
    generate_dataset(str(tmp_path / 'b'), num_train=3, num_val=1, img_size=128, seed=3)
    for split, n in (('train', 3), ('val', 1)):
        names = sorted(p.name for p in (tmp_path / 'a' / split / 'images').iterdir())
        assert len(names) == n and all(x.endswith('__128__0___0.png') for x in names)
        for name in names:
            a = cv2.imread(str(tmp_path / 'a' / split / 'images' / name))
            b = cv2.imread(str(tmp_path / 'b' / split / 'images' / name))
            assert np.array_equal(a, b)
    assert json.loads((tmp_path / 'a' / 'manifest.json').read_text()) == m1
    # the same call again is a no-op; other settings in the same place are refused
    generate_dataset(str(tmp_path / 'a'), num_train=3, num_val=1, img_size=128, seed=3)
    with pytest.raises(FileExistsError, match='other settings'):
        generate_dataset(str(tmp_path / 'a'), num_train=4, num_val=1, img_size=128, seed=3)

    # every labelled polygon is a rectangle covering coloured (non-background) object pixels
    ann = (tmp_path / 'a' / 'train' / 'annfiles').iterdir().__next__()
    img = cv2.imread(str(tmp_path / 'a' / 'train' / 'images' / (ann.stem + '.png')))
    lines = ann.read_text().splitlines()
    assert lines[0].startswith('imagesource:') and lines[1].startswith('gsd:')
    for line in lines[2:]:
        parts = line.split()
        assert parts[8] in CLASSES and parts[9] == '0'
        poly = np.array(parts[:8], float).reshape(4, 2)
        edges = np.roll(poly, -1, 0) - poly
        lengths = np.linalg.norm(edges, axis=1)
        cosines = (edges * np.roll(edges, -1, 0)).sum(1) / (lengths * np.roll(lengths, -1))
        assert np.abs(cosines).max() < 0.02  # right angles (coordinates are rounded to 0.1 px)
        mask = np.zeros(img.shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
        inner = img[cv2.erode(mask, np.ones((3, 3), np.uint8)) > 0].astype(int)
        # object colours are saturated or white/dark; the background is mid grey-ish
        spread = inner.max(1) - inner.min(1)
        assert (spread > 60).mean() > 0.5 or (inner.mean(1) > 200).mean() > 0.3


def test_rbox_corners_convention():
    # theta = 0: w along x; theta = +90 deg (clockwise in image coordinates): w along +y
    c0 = _corners(10, 20, 4, 2, 0.0)
    assert np.allclose(c0, [[12, 21], [12, 19], [8, 19], [8, 21]])
    c90 = _corners(10, 20, 4, 2, np.pi / 2)
    assert np.allclose(c90, [[9, 22], [11, 22], [11, 18], [9, 18]])


def test_browse_dataset_draws_gt_boxes(tmp_path):
    data = tmp_path / 'data'
    generate_dataset(str(data), num_train=2, num_val=1, img_size=256, seed=1)
    cfg = osp.join(REPO_ROOT, 'configs', 'rotated_yolox', 'rotated_yolox_quickstart_synthetic.py')
    out = tmp_path / 'vis'
    run_cmd(
        [
            sys.executable,
            osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'browse_dataset.py'),
            cfg,
            '--output-dir',
            str(out),
            '--not-show',
            '--cfg-options',
            f'train_dataloader.dataset.data_root={data}/',
            'train_dataloader.dataset.pipeline.4.prob=0.0',
        ],
        cwd=tmp_path,
    )
    files = sorted(out.iterdir())
    assert len(files) == 2
    drawn = cv2.imread(str(files[0]))[..., ::-1]  # RGB
    source = sorted((data / 'train' / 'images').iterdir())[0]
    orig = cv2.imread(str(source))[..., ::-1]
    assert drawn.shape == orig.shape  # GT only: one panel
    ann = data / 'train' / 'annfiles' / (source.stem + '.txt')
    palette = {'vehicle': (220, 60, 60), 'pool': (60, 120, 230), 'court': (60, 200, 90)}
    changed = np.abs(drawn.astype(int) - orig.astype(int)).sum(-1) > 60
    for line in ann.read_text().splitlines()[2:]:
        parts = line.split()
        poly = np.array(parts[:8], float).reshape(4, 2)
        # the middle of an edge is drawn, in (roughly) the class colour
        mid = (poly[1] + poly[2]) / 2
        x, y = int(round(mid[0])), int(round(mid[1]))
        window = drawn[max(0, y - 2) : y + 3, max(0, x - 2) : x + 3].reshape(-1, 3).astype(int)
        assert changed[max(0, y - 2) : y + 3, max(0, x - 2) : x + 3].any()
        dist = np.abs(window - np.array(palette[parts[8]])).sum(1).min()
        assert dist < 120, (parts[8], window)
