"""Whole-scene inference (``ai4rs.apis.scene_inference``, ``tools/geo_inference.py``) on
GeoTIFFs written here: a tiny rotated YOLOX (random weights, saved as a real config +
checkpoint) and a registered test detector that finds white rectangles exactly.

Independent expectations: sliced inference of the same image with the same windows (the
scene path must give the same detections, in map coordinates mapped back by the inverse
transform), the nodata mask counted by hand, an object drawn across a tile border, an
uninterrupted run for the resumed one, one process for two.
"""

import os.path as osp
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.structures import InstanceData

from ai4rs.registry import MODELS
from ai4rs.structures import DetDataSample
from ai4rs.structures.bbox import RotatedBoxes, rbox_corners
from tests.conftest import REPO_ROOT, run_cmd
from tests.test_geo.geotiff_helpers import UTM_CRS, UTM_TRANSFORM, write_geotiff
from tests.yolo_world_infer_helpers import save_model, scene, yolox_config

pyogrio = pytest.importorskip('pyogrio')
shapely = pytest.importorskip('shapely')

PATCH, OVERLAP = 64, 16
TOOL = osp.join(REPO_ROOT, 'tools', 'geo_inference.py')


def _write_bgr_geotiff(path, img: np.ndarray, **kwargs) -> str:
    """A BGR uint8 image as an RGB GeoTIFF (bands red, green, blue)."""
    from rasterio.enums import ColorInterp

    rgb = np.ascontiguousarray(img[..., ::-1].transpose(2, 0, 1))
    interp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
    return write_geotiff(path, rgb, colorinterp=interp, **kwargs)


@pytest.fixture(scope='module')
def yolox(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('scene_yolox')
    config, ckpt = save_model(yolox_config(PATCH), str(tmp), 'yolox')
    from ai4rs.apis import init_detector

    return config, ckpt, init_detector(config, ckpt)


def _read_layer(path):
    """(label, score, pixel box, polygon exterior (4, 2)) per feature, and the CRS."""
    meta, _, geometry, fields = pyogrio.raw.read(path)
    names = list(meta['fields'])
    rows = []
    for i, wkb in enumerate(geometry):
        ring = np.asarray(shapely.from_wkb(wkb).exterior.coords)[:4]
        values = {n: fields[j][i] for j, n in enumerate(names)}
        rows.append(values | dict(ring=ring))
    return rows, meta['crs']


def _pixel_rings(rows, transform):
    inverse = ~transform
    out = []
    for row in rows:
        out.append(np.array([inverse @ (float(x), float(y)) for x, y in row['ring']]))
    return out


# --------------------------------------------------------- same as sliced inference
def test_scene_equals_sliced_inference_in_map_coordinates(yolox, tmp_path):
    """The scene path (GeoTIFF read by windows, tiles, merge, GeoPackage) gives sliced
    inference's detections of the same image with the same windows: polygons mapped back
    by the inverse transform within 1e-3 pixel, labels and scores equal."""
    from ai4rs.apis import inference_detector_by_patches
    from ai4rs.apis.scene_inference import inference_scene

    config, ckpt, model = yolox
    img = scene(h=150, w=200, seed=3)
    tif = _write_bgr_geotiff(tmp_path / 'scene.tif', img)
    expected = inference_detector_by_patches(
        model, img, sizes=(PATCH,), steps=(PATCH - OVERLAP,), pad_value=114, progress=False
    )
    result = inference_scene(model, tif, patch_size=PATCH, overlap=OVERLAP, progress=False)
    want, got = expected.pred_instances, result.pred_instances
    assert len(want) > 5
    assert isinstance(got.bboxes, RotatedBoxes)
    torch.testing.assert_close(got.bboxes.tensor, want.bboxes.tensor, atol=1e-4, rtol=0)
    assert torch.equal(got.labels, want.labels)
    torch.testing.assert_close(got.scores, want.scores, atol=1e-6, rtol=0)
    assert result.tiles == 12 and result.tiles_skipped == 0  # 4 columns x 3 rows

    out = tmp_path / 'scene.gpkg'
    run_cmd(
        [sys.executable, TOOL, tif, config, ckpt, '--out', str(out)]
        + ['--patch-size', str(PATCH), '--overlap', str(OVERLAP)],
        cwd=tmp_path,
    )
    rows, crs = _read_layer(str(out))
    assert crs == UTM_CRS
    classes = model.dataset_meta['classes']
    # the layer's features in the merge's order
    assert [r['label'] for r in rows] == [classes[i] for i in want.labels.tolist()]
    np.testing.assert_allclose([r['score'] for r in rows], want.scores.numpy(), atol=1e-6)
    corners = rbox_corners(want.bboxes.tensor.double()).numpy()
    scores = want.scores.numpy()
    px = np.array([[r[k] for k in ('px_cx', 'px_cy', 'px_w', 'px_h', 'px_angle')] for r in rows])
    for i, ring in enumerate(_pixel_rings(rows, UTM_TRANSFORM)):
        # the same four points (the ring may start at another corner, counter-clockwise), of
        # the same box or of one whose score ties with it (the tool's process may order a tie
        # of float rounding the other way)
        ties = np.flatnonzero(np.abs(scores - scores[i]) <= 1e-6)
        dist = [np.abs(ring[:, None] - corners[j][None]).max(-1).min(1).max() for j in ties]
        assert min(dist) < 1e-3
        j = ties[int(np.argmin(dist))]
        np.testing.assert_allclose(px[i], want.bboxes.tensor[j].numpy(), atol=1e-4)


# ------------------------------------------------------------------ nodata tiles
def test_tiles_without_valid_pixels_never_reach_the_model(yolox, tmp_path, monkeypatch):
    """A scene whose left 120 columns and bottom 40 rows are nodata: the patches sent to
    the model are exactly the tiles holding a valid pixel, counted from the mask by hand."""
    from ai4rs.apis import scene_inference
    from ai4rs.geo.scene_reader import scene_windows

    _, _, model = yolox
    img = scene(h=150, w=200, seed=4)
    valid = np.ones(img.shape[:2], bool)
    valid[:, :120] = False
    valid[110:] = False
    img[~valid] = 0
    img[valid & (img.sum(-1) == 0)] = 1  # no valid pixel equals nodata
    tif = _write_bgr_geotiff(tmp_path / 'nodata.tif', img, nodata=0)
    windows = scene_windows(200, 150, PATCH, OVERLAP)
    with_valid = [w for w in windows if valid[w[1] : w[3], w[0] : w[2]].any()]
    assert 0 < len(with_valid) < len(windows)

    sent = []
    original = scene_inference.PatchPredictor.__call__

    def counting(self, patches, first_id=0):
        sent.extend(patches)
        return original(self, patches, first_id)

    monkeypatch.setattr(scene_inference.PatchPredictor, '__call__', counting)
    result = scene_inference.inference_scene(
        model, tif, patch_size=PATCH, overlap=OVERLAP, batch_size=3, progress=False
    )
    assert len(sent) == len(with_valid)
    assert result.tiles_skipped == len(windows) - len(with_valid)
    # nodata pixels reach the model as the padding value
    first = sent[0]
    assert (first == 114).all(-1).any()


# ------------------------------------------------------- an object across a border
@MODELS.register_module(force=True)
class WhiteRectangleDetector(BaseModel):
    """Test detector: every connected region of white pixels (all channels >= 250) of its
    input is one detection, the region's minimum-area rotated rectangle, score = its pixel
    count / 1000 (a region cut by the patch border scores less than the whole one)."""

    box_type = RotatedBoxes
    takes_texts = False

    def __init__(self, data_preprocessor=None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, inputs, data_samples=None, mode='predict'):
        out = []
        for img, sample in zip(inputs, data_samples):
            arr = img.permute(1, 2, 0).cpu().numpy()
            white = (arr >= 250).all(-1).astype(np.uint8)
            count, comp = cv2.connectedComponents(white)
            boxes, scores = [], []
            for k in range(1, count):
                ys, xs = np.nonzero(comp == k)
                pts = np.stack([xs, ys], 1).astype(np.float32)
                # pixel centres at +0.5; a region of whole pixels spans its pixels' edges
                (cx, cy), (w, h), a = cv2.minAreaRect(pts)
                boxes.append([cx + 0.5, cy + 0.5, w + 1, h + 1, np.deg2rad(a)])
                scores.append(len(xs) / 1000)
            pred = InstanceData(
                bboxes=RotatedBoxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 5)),
                scores=torch.tensor(scores, dtype=torch.float32),
                labels=torch.zeros(len(scores), dtype=torch.long),
            )
            result = DetDataSample(metainfo=sample.metainfo)
            result.pred_instances = pred
            out.append(result)
        return out


def _white_detector_config(tmp_path) -> str:
    cfg = Config(
        dict(
            default_scope='ai4rs',
            model=dict(
                type='WhiteRectangleDetector', data_preprocessor=dict(type='DetDataPreprocessor')
            ),
            test_dataloader=dict(
                dataset=dict(
                    type='DOTADataset',
                    metainfo=dict(classes=('rectangle',)),
                    pipeline=[
                        dict(type='LoadImageFromFile'),
                        dict(type='PackDetInputs', meta_keys=('img_id', 'ori_shape', 'img_shape')),
                    ],
                )
            ),
        )
    )
    path = str(tmp_path / 'white.py')
    cfg.dump(path)
    return path


def test_object_across_a_tile_border_is_reported_once(tmp_path):
    """A white 24 x 12 axis-aligned rectangle spanning x 52..76: the tile [0, 64) sees 12
    of its columns, the tile [48, 112) all of it. After the merge: one detection, the whole
    rectangle, whose polygon in map coordinates is its corners through the transform."""
    from ai4rs.apis import init_detector
    from ai4rs.apis.scene_inference import inference_scene, write_scene_detections

    model = init_detector(_white_detector_config(tmp_path))
    img = np.full((100, 130, 3), 90, np.uint8)
    img[30:42, 52:76] = 255
    tif = _write_bgr_geotiff(tmp_path / 'border.tif', img)
    result = inference_scene(model, tif, patch_size=PATCH, overlap=OVERLAP, progress=False)
    pred = result.pred_instances
    assert len(pred) == 1
    corners = rbox_corners(pred.bboxes.tensor.double())[0].numpy()
    want_px = [(52, 30), (76, 30), (76, 42), (52, 42)]
    dist = np.abs(corners[:, None, :] - np.array(want_px, float)[None]).max(-1)
    assert dist.min(1).max() < 1e-4
    out = write_scene_detections(
        result, str(tmp_path / 'border.gpkg'), ['rectangle'], transform=UTM_TRANSFORM, crs=UTM_CRS
    )
    rows, _ = _read_layer(out)
    assert len(rows) == 1 and rows[0]['label'] == 'rectangle'
    want_map = np.array([UTM_TRANSFORM @ p for p in want_px])
    dist = np.abs(rows[0]['ring'][:, None, :] - want_map[None]).max(-1)
    assert dist.min(1).max() < 1e-3  # metres (10 m pixels)


# ---------------------------------------------------------------------- resuming
def test_a_killed_run_resumes_to_the_same_layer(yolox, tmp_path, monkeypatch):
    """A run that dies after two batches leaves its finished tiles in parts_dir; the same
    call again runs only the others and gives the uninterrupted run's detections."""
    from ai4rs.apis import scene_inference

    _, _, model = yolox
    tif = _write_bgr_geotiff(tmp_path / 'resume.tif', scene(h=150, w=200, seed=5))
    kwargs = dict(patch_size=PATCH, overlap=OVERLAP, batch_size=2, progress=False)
    whole = scene_inference.inference_scene(model, tif, **kwargs)

    parts = str(tmp_path / 'parts')
    original = scene_inference.PatchPredictor.__call__
    calls = []

    def dies_on_third_batch(self, patches, first_id=0):
        calls.append(len(patches))
        if len(calls) == 3:
            raise KeyboardInterrupt('killed')
        return original(self, patches, first_id)

    monkeypatch.setattr(scene_inference.PatchPredictor, '__call__', dies_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        scene_inference.inference_scene(model, tif, parts_dir=parts, **kwargs)
    monkeypatch.setattr(scene_inference.PatchPredictor, '__call__', original)

    resumed = scene_inference.inference_scene(model, tif, parts_dir=parts, **kwargs)
    assert resumed.tiles_resumed == 4 and resumed.tiles == 12
    for key in ('scores', 'labels'):
        assert torch.equal(getattr(resumed.pred_instances, key), getattr(whole.pred_instances, key))
    assert torch.equal(resumed.pred_instances.bboxes.tensor, whole.pred_instances.bboxes.tensor)

    # other settings with the same parts folder are refused, naming what differs
    with pytest.raises(ValueError, match='overlap'):
        scene_inference.inference_scene(model, tif, parts_dir=parts, **(kwargs | dict(overlap=8)))


# ------------------------------------------------------------------- torchrun
@pytest.mark.slow
def test_two_processes_write_the_layer_of_one(yolox, tmp_path):
    """torchrun with 2 processes (gloo) shares the tiles out and writes the same layer as
    one process (the same features, within float rounding: 1e-3 m with 10 m pixels)."""
    config, ckpt, _ = yolox
    tif = _write_bgr_geotiff(tmp_path / 'dist.tif', scene(h=150, w=200, seed=6))
    common = [tif, config, ckpt, '--patch-size', str(PATCH), '--overlap', str(OVERLAP)]
    run_cmd([sys.executable, TOOL, *common, '--out', str(tmp_path / 'one.gpkg')], cwd=tmp_path)
    run_cmd(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc-per-node', '2', TOOL, *common]
        + ['--out', str(tmp_path / 'two.gpkg'), '--launcher', 'pytorch'],
        cwd=tmp_path,
        timeout=300,
    )
    one, _ = _read_layer(str(tmp_path / 'one.gpkg'))
    two, _ = _read_layer(str(tmp_path / 'two.gpkg'))
    assert len(one) > 5 and len(one) == len(two)
    # the same features (a rank batches other tiles together: float rounding may swap
    # the order of near-equal scores, not the detections)
    unmatched = list(two)
    for a in one:
        match = [
            b
            for b in unmatched
            if b['label'] == a['label']
            and abs(b['score'] - a['score']) < 1e-5
            and np.abs(b['ring'] - a['ring']).max() < 1e-3
        ]
        assert match, a
        unmatched.remove(match[0])
    assert not osp.exists(str(tmp_path / 'two.gpkg.parts'))


# ------------------------------------------------------------------ bad input
def _load_tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location('geo_inference_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tool_refuses_bad_arguments_before_any_work(tmp_path, capsys):
    """Each a one-line usage error (exit 2) naming the file: an existing layer without
    --overwrite, one layer file for several scenes, a list naming a missing raster (with its
    line), a folder without rasters, --overlap >= --patch-size."""
    tool = _load_tool()
    config = _white_detector_config(tmp_path)
    ckpt = tmp_path / 'none.pth'
    ckpt.write_bytes(b'')
    a = _write_bgr_geotiff(tmp_path / 'a.tif', np.full((8, 8, 3), 90, np.uint8))
    b = _write_bgr_geotiff(tmp_path / 'b.tif', np.full((8, 8, 3), 90, np.uint8))
    (tmp_path / 'exists.gpkg').write_bytes(b'x')
    (tmp_path / 'list.txt').write_text('a.tif\n\nmissing.tif\n')
    (tmp_path / 'empty').mkdir()
    cases = [
        ([a, '--out', str(tmp_path / 'exists.gpkg')], 'exists.gpkg exists: pass --overwrite'),
        ([str(tmp_path / '*.tif'), '--out', str(tmp_path / 'one.gpkg')], '2 scenes'),
        (
            [str(tmp_path / 'list.txt'), '--out', str(tmp_path / 'o')],
            'list.txt, line 3: missing.tif',
        ),
        ([str(tmp_path / 'empty'), '--out', str(tmp_path / 'o')], 'no raster'),
        (
            [a, '--out', str(tmp_path / 'o.gpkg'), '--overlap', '64', '--patch-size', '64'],
            '--overlap',
        ),
    ]
    for argv, message in cases:
        scenes, rest = argv[0], argv[1:]
        with pytest.raises(SystemExit) as exc:
            tool.parse_args([scenes, config, str(ckpt), *rest])
        assert exc.value.code == 2
        assert message in capsys.readouterr().err
    assert (tmp_path / 'exists.gpkg').read_bytes() == b'x'
    assert b  # the glob matches two scenes


def test_a_one_pixel_scene_without_objects_writes_a_valid_empty_layer(tmp_path):
    """A 1 x 1 scene: one padded tile, no detection, an empty GeoPackage with the fields."""
    from ai4rs.apis import init_detector
    from ai4rs.apis.scene_inference import inference_scene, write_scene_detections

    model = init_detector(_white_detector_config(tmp_path))
    tif = _write_bgr_geotiff(tmp_path / 'pixel.tif', np.full((1, 1, 3), 90, np.uint8))
    result = inference_scene(model, tif, patch_size=PATCH, overlap=OVERLAP, progress=False)
    assert result.tiles == 1 and len(result.pred_instances) == 0
    out = write_scene_detections(
        result, str(tmp_path / 'pixel.gpkg'), ['rectangle'], transform=UTM_TRANSFORM, crs=UTM_CRS
    )
    info = pyogrio.read_info(out)
    assert info['features'] == 0 and 'label' in list(info['fields'])


# ------------------------------------------------------------ scales, families
def test_a_coarser_scale_maps_its_boxes_back_to_scene_pixels(tmp_path):
    """ratios=(0.5,): windows of 128 scene pixels resized to the 64-px input; the rectangle
    (edges on even pixels, so the 2x reduction is exact) comes back at its scene corners.
    With ratios=(1.0, 0.5) both scales find it and the merge keeps one."""
    from ai4rs.apis import init_detector
    from ai4rs.apis.scene_inference import inference_scene, scene_tiles

    tiles = scene_tiles(130, 100, PATCH, OVERLAP, ratios=(0.5,))
    assert {t.window[2] - t.window[0] for t in tiles} == {128} and {t.scale for t in tiles} == {0.5}
    model = init_detector(_white_detector_config(tmp_path))
    img = np.full((100, 130, 3), 90, np.uint8)
    img[30:42, 52:76] = 255
    tif = _write_bgr_geotiff(tmp_path / 'scales.tif', img)
    want = np.array([(52, 30), (76, 30), (76, 42), (52, 42)], float)
    for ratios in ((0.5,), (1.0, 0.5)):
        result = inference_scene(
            model, tif, patch_size=PATCH, overlap=OVERLAP, ratios=ratios, progress=False
        )
        assert len(result.pred_instances) == 1, ratios
        corners = rbox_corners(result.pred_instances.bboxes.tensor.double())[0].numpy()
        dist = np.abs(corners[:, None, :] - want[None]).max(-1)
        assert dist.min(1).max() < 1e-3, (ratios, corners)


def test_tool_on_a_folder_of_scenes_writes_one_layer_each(tmp_path):
    """tools/geo_inference.py main() on two scenes in a folder -> OUT/STEM.geojson each, in
    WGS84 (RFC 7946), one rectangle each at its own place; the parts folders are gone."""
    import json

    config = _white_detector_config(tmp_path)
    ckpt = tmp_path / 'white.pth'
    torch.save({'state_dict': {'dummy': torch.zeros(1)}, 'meta': {}}, ckpt)
    scenes = tmp_path / 'scenes'
    scenes.mkdir()
    for name, x in (('east', 20), ('west', 70)):
        img = np.full((64, 100, 3), 90, np.uint8)
        img[10:20, x : x + 20] = 255
        _write_bgr_geotiff(scenes / f'{name}.tif', img)
    out = tmp_path / 'layers'
    # in this process: the test detector is registered here
    _load_tool().main(
        [str(scenes), config, str(ckpt), '--out', str(out)]
        + ['--format', 'geojson', '--patch-size', str(PATCH), '--overlap', str(OVERLAP)]
    )
    from rasterio.warp import transform as warp

    for name, x in (('east', 20), ('west', 70)):
        data = json.loads((out / f'{name}.geojson').read_text())
        (feature,) = data['features']
        assert feature['properties']['label'] == 'rectangle'
        ring = np.array(feature['geometry']['coordinates'][0][:4])
        xs, ys = zip(*(UTM_TRANSFORM @ p for p in [(x, 10), (x + 20, 10), (x + 20, 20), (x, 20)]))
        lon, lat = warp(UTM_CRS, 'EPSG:4326', list(xs), list(ys))
        want = np.stack([lon, lat], 1)
        assert np.abs(ring[:, None, :] - want[None]).max(-1).min(1).max() < 1e-6
    assert sorted(p.name for p in out.iterdir()) == ['east.geojson', 'west.geojson']


def test_open_vocabulary_rotated_model_on_a_scene_follows_its_texts(tiny_clip_dir, tmp_path):
    """The open-vocabulary rotated model with texts: the scene's detections are sliced
    inference's with the same texts, the sample carries the texts, and the layer's labels
    are those texts."""
    from ai4rs.apis import inference_detector_by_patches, init_detector
    from ai4rs.apis.scene_inference import inference_scene, write_scene_detections
    from ai4rs.datasets.preparation.synthetic_dota import generate_dataset, write_class_texts
    from tests.yolo_world_infer_helpers import rotated_world_config

    data_root = tmp_path / 'data'
    generate_dataset(str(data_root), num_train=1, num_val=1, img_size=128)
    write_class_texts(str(data_root))
    cfg = rotated_world_config(tiny_clip_dir, data_root, size=PATCH)
    config, ckpt = save_model(cfg, str(tmp_path), 'world', box_bin=1, angle_std=0.5)
    model = init_detector(config, ckpt)
    texts = ['pool', 'vehicle']
    img = scene(h=100, w=120, seed=7)
    tif = _write_bgr_geotiff(tmp_path / 'world.tif', img)
    result = inference_scene(
        model, tif, texts=texts, patch_size=PATCH, overlap=OVERLAP, progress=False
    )
    expected = inference_detector_by_patches(
        model, img, sizes=(PATCH,), steps=(PATCH - OVERLAP,), texts=texts, progress=False
    )
    assert result.texts == texts and len(result.pred_instances) > 3
    got, want = result.pred_instances, expected.pred_instances
    torch.testing.assert_close(got.bboxes.tensor, want.bboxes.tensor, atol=1e-4, rtol=0)
    assert torch.equal(got.labels, want.labels)
    out = write_scene_detections(
        result, str(tmp_path / 'world.gpkg'), texts, transform=UTM_TRANSFORM, crs=UTM_CRS
    )
    rows, _ = _read_layer(out)
    assert [r['label'] for r in rows] == [texts[i] for i in want.labels.tolist()]


def test_yolo_world_on_a_scene_gives_horizontal_polygons(tiny_clip_dir, tmp_path):
    """YOLO-World (horizontal boxes) with texts: the scene's detections are sliced
    inference's; the layer's polygons are the boxes' corners in map coordinates and its pixel
    fields are x1, y1, x2, y2."""
    from ai4rs.apis import inference_detector_by_patches, init_detector
    from ai4rs.apis.scene_inference import inference_scene, write_scene_detections
    from ai4rs.structures.bbox import HorizontalBoxes
    from tests.yolo_world_infer_helpers import world_config

    config, ckpt = save_model(
        world_config(tiny_clip_dir, size=PATCH), str(tmp_path), 'world', box_bin=1, logit_scale=2.0
    )
    model = init_detector(config, ckpt)
    texts = ['roof', 'car']
    img = scene(h=90, w=110, seed=8)
    tif = _write_bgr_geotiff(tmp_path / 'hbox.tif', img)
    result = inference_scene(
        model, tif, texts=texts, patch_size=PATCH, overlap=OVERLAP, progress=False
    )
    expected = inference_detector_by_patches(
        model, img, sizes=(PATCH,), steps=(PATCH - OVERLAP,), texts=texts, progress=False
    )
    got, want = result.pred_instances, expected.pred_instances
    assert isinstance(got.bboxes, HorizontalBoxes) and len(got) > 3
    torch.testing.assert_close(got.bboxes.tensor, want.bboxes.tensor, atol=1e-4, rtol=0)
    out = write_scene_detections(
        result, str(tmp_path / 'hbox.gpkg'), texts, transform=UTM_TRANSFORM, crs=UTM_CRS
    )
    rows, _ = _read_layer(out)
    boxes = want.bboxes.tensor.double().numpy()
    px = np.array([[r[k] for k in ('px_x1', 'px_y1', 'px_x2', 'px_y2')] for r in rows])
    np.testing.assert_allclose(px, boxes, atol=1e-4)
    for ring, (x1, y1, x2, y2) in zip(_pixel_rings(rows, UTM_TRANSFORM), boxes):
        want_pts = np.array([(x1, y1), (x2, y1), (x2, y2), (x1, y2)])
        assert np.abs(ring[:, None, :] - want_pts[None]).max(-1).min(1).max() < 1e-3


def test_tool_stops_with_one_line_on_a_file_that_is_not_a_raster(tmp_path):
    """A scene GDAL cannot read, or a band it does not have: one error line naming the file
    (no traceback) and no layer or parts folder written."""
    tool = _load_tool()
    config = _white_detector_config(tmp_path)
    ckpt = tmp_path / 'white.pth'
    torch.save({'state_dict': {'dummy': torch.zeros(1)}, 'meta': {}}, ckpt)
    bad = tmp_path / 'notes.tif'
    bad.write_text('not a raster')
    good = _write_bgr_geotiff(tmp_path / 'good.tif', np.full((8, 8, 3), 90, np.uint8))
    for scene_file, extra, message in (
        (str(bad), [], 'notes.tif is not a raster'),
        (good, ['--bands', '5,2,1'], 'asked for band 5, the file has 3'),
    ):
        out = tmp_path / 'out.gpkg'
        with pytest.raises(SystemExit) as exc:
            tool.main([scene_file, config, str(ckpt), '--out', str(out), *extra])
        assert str(exc.value).startswith('error: ') and message in str(exc.value)
        assert not out.exists() and not (tmp_path / 'out.gpkg.parts').exists()
