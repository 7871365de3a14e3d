"""The scene example's tools: the synthetic GeoTIFF scene and the layer quick look."""

import os.path as osp
import sys

import cv2
import numpy as np
import pytest
import torch

from ai4rs.structures.bbox import RotatedBoxes
from tests.conftest import REPO_ROOT, run_cmd

rasterio = pytest.importorskip('rasterio')


def test_synthetic_scene_is_georeferenced_with_its_objects_in_the_labels(tmp_path):
    """The scene is (grid * size)^2, UTM 33N at 0.5 m from (500000, 4000000); every labelled
    object lies wholly outside the nodata corner, which reads as nodata (0) and invalid."""
    from ai4rs.geo.synthetic_scene import write_synthetic_scene

    info = write_synthetic_scene(str(tmp_path / 's.tif'), grid=2, img_size=128, seed=1)
    with rasterio.open(info['path']) as ds:
        assert (ds.width, ds.height, ds.count) == (256, 256, 3)
        assert ds.crs.to_epsg() == 32633 and ds.nodata == 0
        assert ds.transform @ (0, 0) == (500000.0, 4000000.0)
        assert ds.transform @ (256, 256) == (500128.0, 3999872.0)
        mask = ds.dataset_mask()
        data = ds.read()
    ys, xs = np.mgrid[0:256, 0:256]
    assert not mask[xs + ys < 128].any() and mask[xs + ys >= 129].all()
    assert (data[:, xs + ys < 128] == 0).all() and (data[:, xs + ys >= 129] > 0).all()
    lines = open(info['labels']).read().split('\n')
    rows = [line.split() for line in lines if line]
    assert len(rows) == len(info['objects']) > 0
    for row in rows:
        pts = np.array(row[:8], float).reshape(4, 2)
        assert (pts.sum(1) >= 128 - 0.1).all() and row[8] in ('vehicle', 'pool', 'court')


def test_draw_scene_layer_outlines_each_detection(tmp_path):
    """A layer with one rotated box: the quick look (half size) has the label's colour on
    the box's outline, scaled by 1/2, and the scene's colours elsewhere."""
    from ai4rs.geo.synthetic_scene import write_synthetic_scene
    from ai4rs.geo.vector_writer import detection_polygons, write_detections

    info = write_synthetic_scene(str(tmp_path / 's.tif'), grid=2, img_size=128, nodata_corner=False)
    boxes = RotatedBoxes(torch.tensor([[150.0, 100.0, 80.0, 40.0, 0.0]]))
    layer = write_detections(
        str(tmp_path / 'l.gpkg'),
        detection_polygons(boxes, info['transform']),
        ['pool'],
        [0.9],
        boxes,
        info['crs'],
        box_type='rbox',
    )
    out = str(tmp_path / 'q.png')
    run_cmd(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'misc', 'draw_scene_layer.py')]
        + [info['path'], layer, '--out', out, '--max-side', '128'],
        cwd=tmp_path,
    )
    img = cv2.imread(out)
    assert img.shape == (128, 128, 3)
    color = np.array((60, 60, 220))  # the first label's colour (BGR)
    # the box spans x 110..190, y 80..120 in the scene: 55..95, 40..60 at half size
    assert (np.abs(img[40, 60:90].astype(int) - color) <= 40).all()
    assert (np.abs(img[50, 55].astype(int) - color) <= 40).all()
    assert (np.abs(img[50, 75].astype(int) - color) > 40).any()  # inside: the scene
