"""GeoScene reads a georeferenced raster window by window as the models see images (BGR, uint8
by scene-wide statistics, invalid pixels filled), and scene_windows covers a scene."""

import importlib.util
import pickle
import sys

import cv2
import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp
from rasterio.windows import Window

from ai4rs.datasets.image_io import apply_to_uint8, to_uint8, to_uint8_stats
from ai4rs.geo import scene_reader
from ai4rs.geo.scene_reader import GeoScene, SceneReadError, scene_windows
from tests.test_geo.geotiff_helpers import ORIGIN, PIXEL_SIZE, UTM_TRANSFORM, write_geotiff

FILL = (114, 114, 114)


def _bgrn_scene(tmp_path, border=3, height=40, width=50):
    """A 4-band (blue, green, red, NIR) uint16 12-bit scene with a nodata (0) border."""
    rng = np.random.default_rng(0)
    data = rng.integers(1, 3000, (4, height, width), dtype=np.uint16)
    data[:, :border] = 0
    data[:, :, :border] = 0
    data[2, 20, 20] = 0  # one band at the nodata value: the pixel stays valid (dataset mask)
    path = write_geotiff(tmp_path / 'bgrn.tif', data, nodata=0)
    return data, path


# -- windows -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    'width, height, patch, overlap',
    [(10, 7, 4, 1), (100, 37, 16, 5), (1, 1, 8, 2), (5, 30, 8, 0), (64, 64, 16, 0)],
)
def test_scene_windows_cover_every_pixel_with_the_asked_overlap(width, height, patch, overlap):
    windows = scene_windows(width, height, patch, overlap)
    assert windows.dtype == np.int64 and windows.shape[1] == 4
    assert (windows[:, 2] - windows[:, 0] == patch).all()
    assert (windows[:, 3] - windows[:, 1] == patch).all()
    hits = np.zeros((height, width), dtype=int)
    for x1, y1, x2, y2 in windows:
        hits[y1:y2, x1:x2] += 1
    assert (hits >= 1).all()
    for axis, length in ((0, width), (1, height)):
        starts = np.unique(windows[:, axis])
        assert starts[0] == 0
        shared = patch - np.diff(starts)  # overlap of neighbours along the axis
        if length > patch:
            assert (shared[:-1] == overlap).all() and shared[-1] >= overlap
            assert starts[-1] + patch == length  # the last window ends at the edge
        else:
            assert len(starts) == 1  # one window, padded past the edge


def test_scene_windows_by_hand_and_bad_arguments():
    # x starts 0, 3, 6 (the last ends at 10); y starts 0, 3; x-major
    expected = [[0, 0, 4, 4], [0, 3, 4, 7], [3, 0, 7, 4], [3, 3, 7, 7]]
    expected += [[6, 0, 10, 4], [6, 3, 10, 7]]
    np.testing.assert_array_equal(scene_windows(10, 7, 4, 1), expected)
    np.testing.assert_array_equal(scene_windows(3, 2, 8, 2), [[0, 0, 8, 8]])
    both = scene_windows(10, 7, 4, 1, extra_sizes=(8,))
    np.testing.assert_array_equal(both[:6], expected)
    np.testing.assert_array_equal(both[6:], [[0, 0, 8, 8], [2, 0, 10, 8]])
    with pytest.raises(ValueError, match='overlap'):
        scene_windows(10, 10, 4, 4)
    with pytest.raises(ValueError, match='width'):
        scene_windows(0, 10, 4, 1)


# -- the file and its georeference ---------------------------------------------------------
def test_properties_and_georeference(tmp_path):
    data, path = _bgrn_scene(tmp_path)
    with GeoScene(path, bands=(3, 2, 1)) as scene:
        assert (scene.width, scene.height, scene.count) == (50, 40, 4)
        assert scene.bands == (3, 2, 1)
        assert scene.crs.to_epsg() == 32633 and scene.georeferenced
        assert scene.transform @ (0, 0) == ORIGIN
        assert scene.transform @ (2, 3) == (ORIGIN[0] + 2 * PIXEL_SIZE, ORIGIN[1] - 3 * PIXEL_SIZE)
        assert scene.nodata == 0 and scene.dtype == np.uint16
    with GeoScene(path, bands=(3, 2, 1), nodata=7) as scene:
        assert scene.nodata == 7
    # a plain PNG: no CRS, identity transform; GDAL sees it as red, green, blue
    img = np.random.default_rng(1).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    png = str(tmp_path / 'plain.png')
    assert cv2.imwrite(png, img)
    with GeoScene(png) as scene:
        assert scene.crs is None and not scene.georeferenced and scene.bands == (1, 2, 3)
        tile, valid = scene.read_tile((0, 0, 11, 9))
        np.testing.assert_array_equal(tile, img)  # BGR, as cv2 reads it
        assert valid.all()


# -- tiles: bands, scaling, validity, padding ----------------------------------------------
def test_read_tile_is_the_bgr_slice_scaled_by_the_scene_bit_depth(tmp_path):
    data, path = _bgrn_scene(tmp_path)
    valid_px = (data != 0).any(axis=0)
    bits = int(data[:, valid_px].max()).bit_length()  # by hand: 12 (max 2999)
    assert bits == 12
    scaled = np.clip(np.rint(data.astype(np.float64) * 255 / (2**bits - 1)), 0, 255)
    scaled = scaled.astype(np.uint8)
    for bands, bgr in (((3, 2, 1), [0, 1, 2]), ((4, 3, 2), [1, 2, 3])):
        with GeoScene(path, bands=bands) as scene:
            assert scene.stats['bits'] == 12
            window = (2, 5, 30, 25)
            tile, valid = scene.read_tile(window)
            expected = scaled[bgr, 5:25, 2:30].transpose(1, 2, 0)
            expected_valid = valid_px[5:25, 2:30]
            assert tile.shape == (20, 28, 3) and tile.dtype == np.uint8
            np.testing.assert_array_equal(valid, expected_valid)
            np.testing.assert_array_equal(tile[valid], expected[expected_valid])
            assert (tile[~valid] == FILL).all() and (~valid).sum() == 20  # border column x = 2
            assert valid[20 - 5, 20 - 2]  # one band 0 only: still valid


def test_window_past_the_edge_is_padded_and_raw_depth_kept(tmp_path):
    data, path = _bgrn_scene(tmp_path)
    with GeoScene(path, bands=(1,), to_uint8=None) as scene:
        tile, valid = scene.read_tile((40, 30, 60, 48), fill_value=(1, 2, 3))
        assert tile.dtype == np.uint16 and tile.shape == (18, 20, 3) and valid.shape == (18, 20)
        inside = data[0, 30:40, 40:50]
        np.testing.assert_array_equal(tile[:10, :10], np.repeat(inside[..., None], 3, -1))
        assert valid[:10, :10].all() and not valid[10:].any() and not valid[:, 10:].any()
        assert (tile[10:] == (1, 2, 3)).all() and (tile[:, 10:] == (1, 2, 3)).all()
        outside, valid = scene.read_tile((60, 60, 64, 64))
        assert not valid.any() and (outside == 114).all()
        # a window starting before the top-left corner
        before, valid = scene.read_tile((-4, -2, 8, 5), fill_value=(1, 2, 3))
        expected_valid = (data[:, :5, :8] != 0).any(axis=0)
        np.testing.assert_array_equal(valid[2:, 4:], expected_valid)
        assert expected_valid.sum() == 2 * 5 and not valid[:2].any() and not valid[:, :4].any()
        np.testing.assert_array_equal(before[2:, 4:, 0][expected_valid], data[0, 3:5, 3:8].ravel())
        assert (before[~valid] == (1, 2, 3)).all()


def test_tiles_of_a_12_bit_scene_are_scaled_by_one_factor(tmp_path):
    data = np.full((1, 32, 64), 400, dtype=np.uint16)
    data[0, :, 32:] = 4000  # right half: 12-bit values; left half alone would look 9-bit
    path = write_geotiff(tmp_path / 'halves.tif', data)
    with GeoScene(path) as scene:
        left, _ = scene.read_tile((0, 0, 32, 32))
        right, _ = scene.read_tile((32, 0, 64, 32))
    assert (left == round(400 * 255 / 4095)).all()  # 25, as in the right tile's scale
    assert (right == round(4000 * 255 / 4095)).all()
    assert (to_uint8(data[0, :, :32]) == round(400 * 255 / 511)).all()  # per tile: 200


def test_percentile_statistics_are_scene_wide_per_band(tmp_path):
    data, path = _bgrn_scene(tmp_path)
    valid_px = (data != 0).any(axis=0)
    with GeoScene(path, bands=(3, 2, 1), to_uint8=dict(type='percentile', low=5, high=95)) as scene:
        for c, band in enumerate((0, 1, 2)):  # B, G, R = file bands 1, 2, 3
            lo, hi = np.percentile(data[band][valid_px].astype(np.float64), [5, 95])
            assert scene.stats['lo'][c] == pytest.approx(lo)
            assert scene.stats['hi'][c] == pytest.approx(hi)
        tile, valid = scene.read_tile((10, 10, 20, 20))
    lo, hi = np.percentile(data[2][valid_px].astype(np.float64), [5, 95])
    red = np.clip(np.rint((data[2, 10:20, 10:20] - lo) * 255 / (hi - lo)), 0, 255)
    np.testing.assert_array_equal(tile[..., 2], red)


def test_twelve_bit_nbits_tag_wins_over_the_data_maximum(tmp_path):
    data = np.full((1, 8, 8), 1000, dtype=np.uint16)  # max 1000: 10-bit by its data
    path = write_geotiff(tmp_path / 'nbits.tif', data, NBITS=12)
    with GeoScene(path) as scene:
        assert scene.stats['bits'] == 12 and 'NBITS' in scene.stats_source
        tile, _ = scene.read_tile((0, 0, 8, 8))
    assert (tile == round(1000 * 255 / 4095)).all()


def test_statistics_come_from_the_smallest_large_enough_overview(tmp_path):
    old = np.full((1, 200, 200), 900, dtype=np.uint16)  # 10-bit
    path = write_geotiff(tmp_path / 'ov.tif', old, overviews=(2, 4, 8))
    with rasterio.open(path, 'r+') as ds:  # full resolution now 12-bit; overviews keep the old
        ds.write(np.full((1, 200, 200), 4000, dtype=np.uint16))
    # overviews of 100 x 100, 50 x 50, 25 x 25 pixels: the smallest with >= 1000 is 1/4
    with GeoScene(path, stats_pixels=1000) as scene:
        assert scene.stats_source.startswith('overview 1/4') and scene.stats['bits'] == 10
    with GeoScene(path, stats_pixels=50_000) as scene:  # the whole scene is small enough
        assert scene.stats['bits'] == 12
    with GeoScene(path, stats_pixels=20_000) as scene:  # no overview that large: decimated
        assert scene.stats_source == 'decimated read (141 x 141 pixels)'


def test_cloud_optimized_geotiff_uses_its_internal_overviews(tmp_path):
    data = np.random.default_rng(6).integers(1, 2000, (3, 200, 200), dtype=np.uint16)
    path = str(tmp_path / 'scene.cog.tif')
    profile = dict(width=200, height=200, count=3, dtype='uint16', crs='EPSG:32633')
    profile['transform'] = UTM_TRANSFORM
    with rasterio.open(path, 'w', driver='COG', BLOCKSIZE=64, nodata=0, **profile) as ds:
        ds.write(data)
    with rasterio.open(path) as ds:
        assert ds.tags(ns='IMAGE_STRUCTURE')['LAYOUT'] == 'COG' and ds.overviews(1) == [2, 4]
    with GeoScene(path, stats_pixels=5000) as scene:  # 100 x 100 is the smallest >= 5000
        assert scene.stats_source.startswith('overview 1/2') and scene.stats['bits'] == 11
        assert scene.georeferenced and scene.transform == UTM_TRANSFORM
        tile, valid = scene.read_tile((150, 150, 214, 214))
    expected = np.rint(data[::-1, 150:, 150:].astype(np.float64) * 255 / 2047).transpose(1, 2, 0)
    assert valid[:50, :50].all() and not valid[50:].any() and not valid[:, 50:].any()
    np.testing.assert_array_equal(tile[:50, :50], expected)


def test_nodata_override_and_tile_is_empty_exactly_on_all_nodata_windows(tmp_path):
    data, path = _bgrn_scene(tmp_path, border=12)
    with GeoScene(path, bands=(3, 2, 1)) as scene:
        windows = scene_windows(scene.width, scene.height, 8, 2)
        expected = []
        for x1, y1, x2, y2 in windows:
            expected.append(not (data[:3, y1:y2, x1:x2] != 0).any())
        got = [scene.tile_is_empty(w) for w in windows]
        assert got == expected and any(got) and not all(got)
        assert scene.tile_is_empty((100, 100, 108, 108))
    with GeoScene(path, bands=(3, 2, 1), nodata=5) as scene:  # replaces the file's 0
        assert not scene.tile_is_empty((0, 0, 12, 12))
        tile, valid = scene.read_tile((0, 0, 12, 12))
        assert valid.all() and (tile == 0).all()
    overridden = data[:3].copy()
    overridden[:, 20:30, 20:30] = 5
    write_geotiff(tmp_path / 'five.tif', overridden)  # no nodata in the file
    with GeoScene(tmp_path / 'five.tif', nodata=5) as scene:
        assert scene.tile_is_empty((20, 20, 30, 30)) and not scene.tile_is_empty((0, 0, 12, 12))
        tile, valid = scene.read_tile((18, 18, 32, 32))
        assert not valid[2:12, 2:12].any() and valid[0].all() and (tile[2:12, 2:12] == 114).all()


def test_alpha_band_and_internal_mask_are_validity(tmp_path):
    rgba = np.random.default_rng(2).integers(0, 256, (4, 16, 24), dtype=np.uint8)
    rgba[3] = 255
    rgba[3, :, :5] = 0
    path = write_geotiff(tmp_path / 'rgba.tif', rgba, photometric='RGB', alpha='YES')
    with GeoScene(path) as scene:
        assert scene.bands == (1, 2, 3) and scene.stats['bits'] == 8
        tile, valid = scene.read_tile((0, 0, 24, 16))
        assert not valid[:, :5].any() and valid[:, 5:].all()
        np.testing.assert_array_equal(tile[:, 5:], rgba[2::-1, :, 5:].transpose(1, 2, 0))
        assert (tile[:, :5] == 114).all()
        assert scene.tile_is_empty((0, 0, 5, 16)) and not scene.tile_is_empty((0, 0, 6, 16))
    with pytest.raises(ValueError, match='band 4 is an alpha band') as e:
        GeoScene(path, bands=(4, 2, 1))
    assert str(path) in str(e.value)

    mask = np.ones((16, 24), dtype=bool)
    mask[10:] = False
    masked = rgba[:3].astype(np.uint16) * 16  # 12-bit values
    path = write_geotiff(tmp_path / 'masked.tif', masked, mask=mask)
    with GeoScene(path, bands=(1, 2, 3)) as scene:
        _, valid = scene.read_tile((0, 0, 24, 16))
        np.testing.assert_array_equal(valid, mask)
        assert scene.tile_is_empty((0, 10, 24, 16)) and not scene.tile_is_empty((0, 9, 24, 16))
    masked[:, :, 0] = 9
    write_geotiff(path, masked, mask=mask)
    with GeoScene(path, bands=(1, 2, 3), nodata=9) as scene:  # the file's mask still applies
        _, valid = scene.read_tile((0, 0, 24, 16))
        expected = mask.copy()
        expected[:, 0] = False
        np.testing.assert_array_equal(valid, expected)


def test_float_scene_with_nan_and_single_band_colour_choice(tmp_path):
    values = np.random.default_rng(3).random((1, 12, 12)).astype(np.float32)
    values[0, :4] = np.nan
    path = write_geotiff(tmp_path / 'float.tif', values)
    with GeoScene(path) as scene:
        assert scene.bands == (1,)
        tile, valid = scene.read_tile((0, 0, 12, 12))
        assert not valid[:4].any() and valid[4:].all() and (tile[:4] == 114).all()
        expected = np.rint(values[0, 4:] * 255).astype(np.uint8)
        for c in range(3):  # one band repeated to 3 channels
            np.testing.assert_array_equal(tile[4:, :, c], expected)
        assert scene.tile_is_empty((0, 0, 12, 4)) and not scene.tile_is_empty((0, 0, 12, 5))
    write_geotiff(tmp_path / 'wide.tif', values * 100)
    with pytest.raises(ValueError, match='percentile') as e:
        GeoScene(tmp_path / 'wide.tif')
    assert 'wide.tif' in str(e.value)


def test_default_bands_follow_the_colour_interpretation(tmp_path):
    data = np.zeros((4, 4, 4), dtype=np.uint16)
    interp = [ColorInterp.blue, ColorInterp.green, ColorInterp.red, ColorInterp.undefined]
    path = write_geotiff(tmp_path / 'bgrn_interp.tif', data, colorinterp=interp)
    with GeoScene(path) as scene:
        assert scene.bands == (3, 2, 1)
    with GeoScene(write_geotiff(tmp_path / 'four.tif', data)) as scene:
        assert scene.bands == (1, 2, 3)
    with GeoScene(tmp_path / 'four.tif', bands='4, 3,2') as scene:
        assert scene.bands == (4, 3, 2)


# -- errors ------------------------------------------------------------------------------
def test_errors_name_the_file(tmp_path):
    text = tmp_path / 'notes.txt'
    text.write_text('not a raster\n')
    garbage = tmp_path / 'broken.jpg'
    garbage.write_bytes(np.random.default_rng(4).integers(0, 256, 300, dtype=np.uint8).tobytes())
    for path in (text, garbage):
        with pytest.raises(SceneReadError, match='not a raster') as e:
            GeoScene(path)
        assert str(path) in str(e.value)
    with pytest.raises(FileNotFoundError, match='missing.tif'):
        GeoScene(tmp_path / 'missing.tif')
    data, path = _bgrn_scene(tmp_path)
    cases = [
        ((5, 2, 1), 'asked for band 5, the file has 4'),
        ((3, 2), 'give 3 bands'),
        ('3,x,1', 'comma-separated'),
    ]
    for bands, message in cases:
        with pytest.raises(ValueError, match=message) as e:
            GeoScene(path, bands=bands)
        assert path in str(e.value)
    two = write_geotiff(tmp_path / 'two.tif', data[:2])
    with pytest.raises(ValueError, match='--bands') as e:
        GeoScene(two)
    assert two in str(e.value)
    with GeoScene(path, bands=(3, 2, 1)) as scene:
        with pytest.raises(ValueError, match='x2 > x1'):
            scene.read_tile((5, 5, 5, 9))
        with pytest.raises(ValueError, match='not a uint8 value'):
            scene.read_tile((0, 0, 4, 4), fill_value=300)
        with pytest.raises(ValueError, match='3 numbers'):
            scene.read_tile((0, 0, 4, 4), fill_value=(1, 2))
        img, _ = scene.read_tile((0, 0, 3, 3), fill_value=7)
        assert (img == 7).all()  # the nodata corner


def test_a_corrupt_tile_raises_naming_file_and_window(tmp_path):
    data, path = _bgrn_scene(tmp_path)
    with rasterio.open(path) as ds:  # the compressed bytes of block (row 0, column 1) of band 1
        offset = int(ds.get_tag_item('BLOCK_OFFSET_1_0', 'TIFF', bidx=1))
        size = int(ds.get_tag_item('BLOCK_SIZE_1_0', 'TIFF', bidx=1))
    raw = bytearray(open(path, 'rb').read())
    raw[offset : offset + size] = b'\xff' * size
    with open(path, 'wb') as f:
        f.write(raw)
    with pytest.raises(SceneReadError, match='bgrn.tif'):
        GeoScene(path, bands=(3, 2, 1))  # measuring the scene's bit depth reads the block
    with GeoScene(path, bands=(3, 2, 1), to_uint8=dict(type='bit_depth', bits=12)) as scene:
        assert scene.stats['bits'] == 12 and 'bits given' in scene.stats_source
        scene.read_tile((0, 0, 16, 16))  # other blocks read fine
        with pytest.raises(SceneReadError) as e:
            scene.read_tile((16, 0, 32, 16))
    assert path in str(e.value) and '(16, 0, 32, 16)' in str(e.value)


def test_a_truncated_file_raises_at_the_missing_tiles(tmp_path):
    data, path = _bgrn_scene(tmp_path)
    raw = open(path, 'rb').read()
    with open(path, 'wb') as f:  # GDAL writes the directory first: the last tiles go
        f.write(raw[: len(raw) * 2 // 3])
    with GeoScene(path, bands=(3, 2, 1), to_uint8=dict(type='bit_depth', bits=12)) as scene:
        scene.read_tile((0, 0, 16, 16))
        with pytest.raises(SceneReadError, match='could not read window') as e:
            scene.read_tile((32, 32, 50, 40))
    assert path in str(e.value) and '(32, 32, 50, 40)' in str(e.value)


def test_a_one_pixel_scene(tmp_path):
    path = write_geotiff(tmp_path / 'one.tif', np.array([[[4000]]], dtype=np.uint16))
    with GeoScene(path) as scene:
        (window,) = scene_windows(scene.width, scene.height, 8, 2)
        img, valid = scene.read_tile(window)
    assert img.shape == (8, 8, 3) and valid.sum() == 1 and valid[0, 0]
    assert (img[0, 0] == round(4000 * 255 / 4095)).all() and (img[1:] == 114).all()


def test_read_tile_reads_only_the_window(tmp_path):
    data, path = _bgrn_scene(tmp_path)
    with GeoScene(path, bands=(3, 2, 1)) as scene:
        asked = []
        read = scene._ds.read

        def spy(*args, **kwargs):
            asked.append(kwargs.get('window'))
            return read(*args, **kwargs)

        scene._ds.read = spy
        scene.read_tile((40, 30, 60, 50))
    assert asked == [Window(40, 30, 10, 10)]


# -- the to_uint8 rule with statistics measured elsewhere ------------------------------------
@pytest.mark.parametrize('rule', ['bit_depth', 'percentile', dict(type='percentile', nodata=7)])
def test_to_uint8_is_its_statistics_applied(rule):
    rng = np.random.default_rng(5)
    for img in (
        rng.integers(0, 3000, (6, 7, 3), dtype=np.uint16),
        rng.integers(0, 256, (6, 7), dtype=np.uint8),
        rng.random((6, 7, 3)).astype(np.float32),
    ):
        stats = to_uint8_stats(img, rule)
        np.testing.assert_array_equal(apply_to_uint8(img, stats), to_uint8(img, rule))
    img = np.array([[100, 4000]], dtype=np.uint16)
    assert to_uint8_stats(img, 'bit_depth', valid=np.array([[True, False]]))['bits'] == 8
    assert to_uint8_stats(img, 'bit_depth')['bits'] == 12


def test_a_pickled_scene_reopens_with_the_same_statistics(tmp_path):
    data, path = _bgrn_scene(tmp_path)
    with GeoScene(path, bands=(3, 2, 1), to_uint8='percentile') as scene:
        copy = pickle.loads(pickle.dumps(scene))
        with copy:
            assert copy.stats == scene.stats and copy.stats_source == 'given'
            assert copy.bands == (3, 2, 1)
            for a, b in zip(copy.read_tile((0, 0, 20, 20)), scene.read_tile((0, 0, 20, 20))):
                np.testing.assert_array_equal(a, b)
        with pytest.raises(ValueError, match='not measured by the to_uint8 rule') as e:
            GeoScene(path, bands=(3, 2, 1), to_uint8='bit_depth', stats=scene.stats)
    assert path in str(e.value)


def test_without_rasterio_the_import_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, 'rasterio', None)  # as if not installed
    spec = importlib.util.spec_from_file_location('scene_reader_copy', scene_reader.__file__)
    with pytest.raises(ImportError, match=r'ai4rs\[geo\]'):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
