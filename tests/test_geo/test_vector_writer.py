"""Georeferenced detection layers: corners in map units, GeoPackage / GeoJSON written with
pyogrio and read back independently (pyogrio.raw.read + shapely, json), Task1 text."""

import importlib.util
import json
import math
import os
import re

import numpy as np
import pyogrio
import pyogrio.raw
import pytest
import shapely
import torch
from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.warp import transform as warp_transform

from ai4rs.evaluation.functional import load_task1_file
from ai4rs.evaluation.functional.dota_results import write_task1
from ai4rs.geo import vector_writer
from ai4rs.geo.vector_writer import (
    ccw_rings,
    detection_polygons,
    driver_for,
    to_wgs84,
    write_detections,
)
from ai4rs.structures.bbox import HorizontalBoxes, QuadriBoxes, RotatedBoxes
from tests.conftest import REPO_ROOT

S3 = math.sqrt(3.0)
# UTM zone 33N, north-up, 0.5 m pixels, top-left corner of the scene at (600000, 5400000)
UTM33N = 'EPSG:32633'
TRANSFORM = Affine(0.5, 0.0, 600000.0, 0.0, -0.5, 5400000.0)
# (cx, cy, w, h, t) = (20, 40, 8, 4, 30 deg): v1 = (2 sqrt3, 2), v2 = (-1, sqrt3); corners
# c+v1+v2, c+v1-v2, c-v1-v2, c-v1+v2 in pixels, then x = 600000 + col / 2, y = 5400000 - row / 2
RBOX = [20.0, 40.0, 8.0, 4.0, math.pi / 6]
RBOX_MAP = np.array(
    [
        [600009.5 + S3, 5399979.0 - S3 / 2],
        [600010.5 + S3, 5399979.0 + S3 / 2],
        [600010.5 - S3, 5399981.0 + S3 / 2],
        [600009.5 - S3, 5399981.0 - S3 / 2],
    ]
)  # counter-clockwise already (corner angles about the centre: -57, -3, 123, 177 deg)
# hbox (x1, y1, x2, y2) = (10, 20, 30, 60) px: (x1,y1), (x2,y1), (x2,y2), (x1,y2) -> map
HBOX = [10.0, 20.0, 30.0, 60.0]
HBOX_MAP = np.array(
    [[600005.0, 5399990.0], [600015.0, 5399990.0], [600015.0, 5399970.0], [600005.0, 5399970.0]]
)  # clockwise in map coordinates (y up): the ring is written as corners 0, 3, 2, 1


def _read(path):
    meta, _, geometry, field_data = pyogrio.raw.read(path)
    rings = [np.asarray(g.exterior.coords) for g in shapely.from_wkb(geometry)]
    fields = dict(zip(meta['fields'], field_data))
    return meta, rings, fields


def test_detection_polygons_rotated_box_under_utm_transform():
    # float64 boxes: float32's pi / 6 alone moves the corners by ~3e-8 m
    corners = detection_polygons(RotatedBoxes(torch.tensor([RBOX], dtype=torch.float64)), TRANSFORM)
    assert corners.dtype == np.float64 and corners.shape == (1, 4, 2)
    np.testing.assert_allclose(corners[0], RBOX_MAP, rtol=0, atol=1e-9)


def test_detection_polygons_by_box_type_and_rotated_transform():
    hbox = detection_polygons(HorizontalBoxes(torch.tensor([HBOX])), TRANSFORM)
    np.testing.assert_allclose(hbox[0], HBOX_MAP, atol=1e-9)
    quad = [1.0, 2.0, 5.0, 2.0, 5.0, 7.0, 1.0, 9.0]
    q = detection_polygons(QuadriBoxes(torch.tensor([quad])), TRANSFORM)
    np.testing.assert_allclose(
        q[0],
        [[600000.5, 5399999.0], [600002.5, 5399999.0], [600002.5, 5399996.5],
         [600000.5, 5399995.5]],
    )  # fmt: skip
    # a rotated grid (b, d != 0): x = 2 col + 3 row + 100, y = -1 col + 4 row + 50
    rot = Affine(2.0, 3.0, 100.0, -1.0, 4.0, 50.0)
    out = detection_polygons(HorizontalBoxes(torch.tensor([[1.0, 2.0, 3.0, 5.0]])), rot)
    # corners (1,2), (3,2), (3,5), (1,5)
    np.testing.assert_allclose(out[0], [[108, 57], [112, 55], [121, 67], [117, 69]])
    with pytest.raises(TypeError, match='RotatedBoxes, HorizontalBoxes or QuadriBoxes'):
        detection_polygons(torch.tensor([RBOX]), TRANSFORM)
    with pytest.raises(TypeError, match='affine.Affine'):
        detection_polygons(RotatedBoxes(torch.tensor([RBOX])), (0.5, 0, 0, 0, -0.5, 0))
    with pytest.raises(ValueError, match='box 1 has a non-finite'):
        detection_polygons(RotatedBoxes(torch.tensor([RBOX, [1, 2, float('nan'), 1, 0]])), rot)


def test_ccw_rings_reverses_clockwise_polygons_only():
    ccw = np.array([[[0, 0], [1, 0], [1, 1], [0, 1]]], float)
    rings = ccw_rings(np.concatenate([ccw, ccw[:, ::-1]]))
    np.testing.assert_array_equal(rings[0], [[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]])
    # clockwise (0,1), (1,1), (1,0), (0,0) -> walked backwards from its first corner
    np.testing.assert_array_equal(rings[1], [[0, 1], [0, 0], [1, 0], [1, 1], [0, 1]])


def _rotated_detections():
    boxes = RotatedBoxes(torch.tensor([RBOX, [100.0, 50.0, 10.0, 6.0, -0.25]], dtype=torch.float64))
    return boxes, detection_polygons(boxes, TRANSFORM), ['ship', 'plane'], [0.9, 0.25]


def test_geopackage_in_scene_crs_with_fields(tmp_path):
    boxes, polygons, labels, scores = _rotated_detections()
    path = str(tmp_path / 'scene.gpkg')
    assert write_detections(path, polygons, labels, scores, boxes, CRS.from_string(UTM33N),
                            box_type='rbox') == path  # fmt: skip
    info = pyogrio.read_info(path)
    assert info['crs'] == UTM33N and info['driver'] == 'GPKG'
    assert info['layer_name'] == 'scene' and info['geometry_type'] == 'Polygon'
    assert info['features'] == 2
    meta, rings, fields = _read(path)
    assert list(meta['fields']) == ['label', 'score', 'px_cx', 'px_cy', 'px_w', 'px_h', 'px_angle']
    np.testing.assert_allclose(rings[0], np.concatenate([RBOX_MAP, RBOX_MAP[:1]]), atol=1e-9)
    assert shapely.Polygon(rings[1]).exterior.is_ccw
    assert list(fields['label']) == labels
    np.testing.assert_array_equal(fields['score'], scores)
    px = np.stack([fields[k] for k in ('px_cx', 'px_cy', 'px_w', 'px_h', 'px_angle')], 1)
    np.testing.assert_array_equal(px, boxes.tensor.numpy())
    assert os.listdir(tmp_path) == ['scene.gpkg']  # no temporary left behind


def test_geojson_is_rfc7946_wgs84(tmp_path):
    boxes, polygons, labels, scores = _rotated_detections()
    path = tmp_path / 'scene.geojson'
    write_detections(path, polygons, labels, scores, boxes, UTM33N, box_type='rbox')
    doc = json.loads(path.read_text())
    # GDAL's RFC 7946 mode: no "crs" member (the coordinates are WGS84 lon / lat by definition)
    assert doc['type'] == 'FeatureCollection' and 'crs' not in doc
    feat = doc['features'][0]
    assert feat['properties']['label'] == 'ship' and feat['properties']['score'] == 0.9
    assert feat['properties']['px_angle'] == pytest.approx(math.pi / 6)
    ring = np.array(feat['geometry']['coordinates'][0])
    assert feat['geometry']['type'] == 'Polygon' and ring.shape == (5, 2)
    lon, lat = warp_transform(UTM33N, 'EPSG:4326', RBOX_MAP[:, 0], RBOX_MAP[:, 1])
    expected = np.stack([lon, lat], 1)
    np.testing.assert_allclose(ring, np.concatenate([expected, expected[:1]]), rtol=0, atol=6e-8)
    # somewhere near 16.3 E, 48.7 N (zone 33N, central meridian 15 E)
    assert 16 < ring[0, 0] < 17 and 48 < ring[0, 1] < 49


def test_to_wgs84_known_point_and_unprojectable_crs(tmp_path):
    # the origin of UTM zone 33N's false easting on the equator is (15 E, 0 N)
    np.testing.assert_allclose(to_wgs84(np.array([[500000.0, 0.0]]), UTM33N), [[15.0, 0.0]],
                               atol=1e-9)  # fmt: skip
    local = CRS.from_wkt(
        'LOCAL_CS["site grid",UNIT["metre",1],AXIS["Easting",EAST],AXIS["Northing",NORTH]]'
    )
    boxes, polygons, labels, scores = _rotated_detections()
    with pytest.raises(ValueError, match=r'site grid.*\.gpkg'):
        write_detections(tmp_path / 'a.geojson', polygons, labels, scores, boxes, local,
                         box_type='rbox')  # fmt: skip
    with pytest.raises(ValueError, match='site grid'):  # an empty layer fails the same way
        write_detections(tmp_path / 'b.geojson', np.zeros((0, 4, 2)), [], [], np.zeros((0, 5)),
                         local, box_type='rbox')  # fmt: skip
    assert os.listdir(tmp_path) == []
    # the GeoPackage keeps the local CRS
    write_detections(tmp_path / 'a.gpkg', polygons, labels, scores, boxes, local, box_type='rbox')
    assert 'site grid' in pyogrio.read_info(tmp_path / 'a.gpkg')['crs']


def test_horizontal_boxes_layer(tmp_path):
    boxes = HorizontalBoxes(torch.tensor([HBOX]))
    path = tmp_path / 'h.gpkg'
    write_detections(path, detection_polygons(boxes, TRANSFORM), ['car'], torch.tensor([0.5]),
                     boxes, UTM33N, box_type='hbox', layer='cars')  # fmt: skip
    meta, rings, fields = _read(path)
    assert pyogrio.read_info(path)['layer_name'] == 'cars'
    assert list(meta['fields']) == ['label', 'score', 'px_x1', 'px_y1', 'px_x2', 'px_y2']
    # clockwise in map coordinates, so written as corners 0, 3, 2, 1, 0
    np.testing.assert_allclose(rings[0], HBOX_MAP[[0, 3, 2, 1, 0]])
    assert [fields[k][0] for k in ('px_x1', 'px_y1', 'px_x2', 'px_y2')] == HBOX
    with pytest.raises(TypeError, match="box_type='rbox' but pixel_boxes is a HorizontalBoxes"):
        write_detections(tmp_path / 'x.gpkg', detection_polygons(boxes, TRANSFORM), ['car'],
                         [0.5], boxes, UTM33N, box_type='rbox')  # fmt: skip


def test_no_crs_writes_pixels_and_warns(tmp_path):
    boxes = RotatedBoxes(torch.tensor([RBOX], dtype=torch.float64))
    pixel_polygons = detection_polygons(boxes, Affine.identity())
    with pytest.warns(UserWarning, match='coordinates are pixels'):
        write_detections(tmp_path / 'p.gpkg', pixel_polygons, ['ship'], [0.9], boxes, None,
                         box_type='rbox')  # fmt: skip
    assert pyogrio.read_info(tmp_path / 'p.gpkg')['crs'] is None
    _, rings, _ = _read(tmp_path / 'p.gpkg')
    corners = np.array([[19 + 2 * S3, 42 + S3], [21 + 2 * S3, 42 - S3],
                        [21 - 2 * S3, 38 - S3], [19 - 2 * S3, 38 + S3]])  # fmt: skip
    assert {tuple(np.round(p, 6)) for p in rings[0]} == {tuple(np.round(p, 6)) for p in corners}
    # GeoJSON readers take any coordinates as WGS84 lon / lat (GDAL reports EPSG:4326): refused
    with pytest.raises(ValueError, match=r'no CRS.*\.gpkg'):
        write_detections(tmp_path / 'p.geojson', pixel_polygons, ['ship'], [0.9], boxes, None,
                         box_type='rbox')  # fmt: skip
    assert os.listdir(tmp_path) == ['p.gpkg']


def test_empty_layer(tmp_path):
    empty = (np.zeros((0, 4, 2)), [], np.zeros(0), RotatedBoxes(torch.zeros(0, 5)), UTM33N)
    write_detections(tmp_path / 'e.gpkg', *empty, box_type='rbox')
    info = pyogrio.read_info(tmp_path / 'e.gpkg')
    assert info['features'] == 0 and info['crs'] == UTM33N
    assert list(info['fields']) == ['label', 'score', 'px_cx', 'px_cy', 'px_w', 'px_h', 'px_angle']
    write_detections(tmp_path / 'e.geojson', *empty, box_type='rbox')
    doc = json.loads((tmp_path / 'e.geojson').read_text())
    assert doc['type'] == 'FeatureCollection' and doc['features'] == []
    assert pyogrio.read_info(tmp_path / 'e.geojson')['features'] == 0


def test_existing_path_unsupported_suffix_and_bad_inputs(tmp_path):
    boxes, polygons, labels, scores = _rotated_detections()
    path = tmp_path / 'scene.gpkg'
    path.write_text('older result')
    with pytest.raises(FileExistsError, match='scene.gpkg'):
        write_detections(path, polygons, labels, scores, boxes, UTM33N, box_type='rbox')
    assert path.read_text() == 'older result'
    write_detections(path, polygons, labels, scores, boxes, UTM33N, box_type='rbox',
                     overwrite=True)  # fmt: skip
    assert pyogrio.read_info(path)['features'] == 2
    assert [driver_for(f'a{s}') for s in ('.GPKG', '.geojson', '.json')] == [
        'GPKG',
        'GeoJSON',
        'GeoJSON',
    ]
    with pytest.raises(ValueError, match=r"'\.shp'.*\.gpkg, \.geojson, \.json"):
        write_detections(tmp_path / 'a.shp', polygons, labels, scores, boxes, UTM33N,
                         box_type='rbox')  # fmt: skip
    with pytest.raises(ValueError, match='2 polygons, 1 labels'):
        write_detections(tmp_path / 'b.gpkg', polygons, labels[:1], scores, boxes, UTM33N,
                         box_type='rbox')  # fmt: skip
    with pytest.raises(TypeError, match='label 1 is 3'):
        write_detections(tmp_path / 'c.gpkg', polygons, ['ship', 3], scores, boxes, UTM33N,
                         box_type='rbox')  # fmt: skip
    with pytest.raises(ValueError, match=r'scores\[1\] is not finite'):
        write_detections(tmp_path / 'd.gpkg', polygons, labels, [0.5, float('nan')], boxes,
                         UTM33N, box_type='rbox')  # fmt: skip
    with pytest.raises(FileNotFoundError, match='missing'):
        write_detections(tmp_path / 'missing' / 'e.gpkg', polygons, labels, scores, boxes,
                         UTM33N, box_type='rbox')  # fmt: skip
    assert sorted(os.listdir(tmp_path)) == ['scene.gpkg']


def test_crash_mid_write_leaves_nothing(tmp_path, monkeypatch):
    boxes, polygons, labels, scores = _rotated_detections()

    def write_then_crash(path, *args, **kwargs):
        real_write(path, *args, **kwargs)  # the layer is complete in the temporary file ...
        raise RuntimeError('disk full')  # ... and then the process fails before the rename

    real_write = pyogrio.raw.write
    monkeypatch.setattr(vector_writer.pyogrio.raw, 'write', write_then_crash)
    with pytest.raises(RuntimeError, match='disk full'):
        write_detections(tmp_path / 's.gpkg', polygons, labels, scores, boxes, UTM33N,
                         box_type='rbox')  # fmt: skip
    assert os.listdir(tmp_path) == []


def test_write_task1_reuses_the_dota_writer(tmp_path):
    boxes = RotatedBoxes(torch.tensor([RBOX, [5.0, 6.0, 2.0, 2.0, 0.0]], dtype=torch.float64))
    paths = write_task1(str(tmp_path), 'scene_1', boxes, torch.tensor([1, 1]),
                        torch.tensor([0.9, 0.4]), ['plane', 'ship'])  # fmt: skip
    assert [os.path.basename(p) for p in paths] == ['Task1_plane.txt', 'Task1_ship.txt']
    assert load_task1_file(paths[0])[0] == []
    names, sc, polys, _ = load_task1_file(paths[1])
    assert names == ['scene_1', 'scene_1']
    np.testing.assert_allclose(sc, [0.9, 0.4])
    corners = [19 + 2 * S3, 42 + S3, 21 + 2 * S3, 42 - S3, 21 - 2 * S3, 38 - S3, 19 - 2 * S3,
               38 + S3]  # fmt: skip
    np.testing.assert_allclose(polys[0], corners, atol=0.005)  # '%.2f'
    np.testing.assert_allclose(polys[1], [6, 7, 6, 5, 4, 5, 4, 7])
    quads = QuadriBoxes(torch.tensor([[1.0, 2.0, 5.0, 2.0, 5.0, 7.0, 1.0, 9.0]]))
    write_task1(str(tmp_path), 'scene_2', quads, [0], [0.3], ['plane', 'ship'])
    assert load_task1_file(paths[0])[2].tolist() == [[1, 2, 5, 2, 5, 7, 1, 9]]
    with pytest.raises(ValueError, match='label 2 is not an index of the 2 class_names'):
        write_task1(str(tmp_path), 'scene', quads, [2], [0.3], ['plane', 'ship'])
    with pytest.raises(ValueError, match='no whitespace'):
        write_task1(str(tmp_path), 'my scene', quads, [0], [0.3], ['plane', 'ship'])
    with pytest.raises(TypeError, match='RotatedBoxes or QuadriBoxes'):
        write_task1(str(tmp_path), 'scene', HorizontalBoxes(torch.zeros(1, 4)), [0], [0.3],
                    ['plane', 'ship'])  # fmt: skip


def test_benchmark_vector_write_runs_and_checks_its_layers(capsys):
    path = os.path.join(REPO_ROOT, 'tools', 'analysis_tools', 'benchmark_vector_write.py')
    spec = importlib.util.spec_from_file_location('benchmark_vector_write', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    dets = tool.make_detections(30)
    assert len(dets['labels']) == 30 and dets['polygons'].shape == (30, 4, 2)
    results = tool.main(['--num-dets', '30', '--repeat', '1'])
    assert set(results) == {'.gpkg', '.geojson'} and all(r[0] > 0 for r in results.values())
    table = capsys.readouterr().out
    assert table.splitlines()[0] == '30 rotated detections, best of 1'
    assert re.search(r'^\.gpkg +\d+\.\d{3} ', table, re.M)


def test_geotiff_transform_and_crs_end_to_end(tmp_path):
    """The documented use: transform and CRS of a real (tiny) GeoTIFF, a layer from them."""
    import rasterio

    tif = tmp_path / 'scene.tif'
    profile = dict(driver='GTiff', width=64, height=48, count=1, dtype='uint16', crs=UTM33N,
                   transform=TRANSFORM)  # fmt: skip
    with rasterio.open(tif, 'w', **profile) as dst:
        dst.write(np.zeros((1, 48, 64), np.uint16))
    with rasterio.open(tif) as src:
        transform, crs = src.transform, src.crs
        # GDAL's convention, independently: the upper-left corner of pixel (row 40, col 20)
        corner = src.xy(40, 20, offset='ul')
    boxes = RotatedBoxes(torch.tensor([RBOX], dtype=torch.float64))
    polygons = detection_polygons(boxes, transform)
    np.testing.assert_allclose(polygons[0].mean(axis=0), corner, atol=1e-9)  # the box centre
    write_detections(tmp_path / 'scene.gpkg', polygons, ['ship'], [0.9], boxes, crs,
                     box_type='rbox')  # fmt: skip
    assert pyogrio.read_info(tmp_path / 'scene.gpkg')['crs'] == UTM33N
    _, rings, _ = _read(tmp_path / 'scene.gpkg')
    np.testing.assert_allclose(rings[0][:4], RBOX_MAP, atol=1e-9)
