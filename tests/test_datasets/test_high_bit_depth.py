"""Images deeper than 8 bits load by an explicit rule, the same in training, test, demo and
sliced inference: a 12-bit image stored in a 16-bit PNG gives its 8-bit version's pixels."""

import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from ai4rs.datasets.image_io import data_bit_depth, read_image, to_uint8
from ai4rs.datasets.transforms import LoadImageFromFile, LoadImageFromNDArray
from tests.conftest import REPO_ROOT

QUICKSTART = osp.join(
    REPO_ROOT, 'configs', 'rotated_yolox', 'rotated_yolox_quickstart_synthetic.py'
)


def _pair(tmp_path, size=(40, 48)):
    """An 8-bit image and the same image as 12-bit data in a 16-bit PNG (both written)."""
    rng = np.random.default_rng(0)
    img8 = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    img8[0, 0] = 255  # full range: the 12-bit copy reaches 4095
    img12 = np.rint(img8.astype(np.float64) * 4095 / 255).astype(np.uint16)
    p8, p16 = str(tmp_path / 'img8.png'), str(tmp_path / 'img12.png')
    assert cv2.imwrite(p8, img8) and cv2.imwrite(p16, img12)
    return img8, img12, p8, p16


def test_twelve_bit_png_loads_as_its_eight_bit_version(tmp_path):
    img8, img12, p8, p16 = _pair(tmp_path)
    assert cv2.imread(p16, cv2.IMREAD_UNCHANGED).dtype == np.uint16
    # what mmcv / OpenCV's IMREAD_COLOR give: the high byte, values 0..15
    assert cv2.imread(p16, cv2.IMREAD_COLOR).max() == 15
    loaded = LoadImageFromFile()(dict(img_path=p16))['img']
    assert loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded, img8)  # x*4095/255 rounded, then *255/4095: exact
    np.testing.assert_array_equal(LoadImageFromFile()(dict(img_path=p8))['img'], img8)
    # arrays (inference on ndarrays) by the same rule; the raw depth on request
    np.testing.assert_array_equal(LoadImageFromNDArray()(dict(img=img12))['img'], img8)
    raw = LoadImageFromFile(to_uint8=None)(dict(img_path=p16))['img']
    assert raw.dtype == np.uint16 and np.array_equal(raw, img12)


def test_bit_depth_rule_by_hand():
    dark = np.array([[0, 500, 1000]], dtype=np.uint16)  # max 1000 < 1024: 10-bit data
    assert data_bit_depth(dark) == 10
    np.testing.assert_array_equal(to_uint8(dark), [[0, 125, 249]])  # x*255/1023 rounded
    np.testing.assert_array_equal(
        to_uint8(dark, dict(type='bit_depth', bits=12)), [[0, 31, 62]]
    )  # x*255/4095: 31.1, 62.3
    assert data_bit_depth(np.array([[255]], np.uint16)) == 8  # 8-bit data in 16 bits: unchanged
    np.testing.assert_array_equal(to_uint8(np.array([[0.0, 0.5, 1.0]])), [[0, 128, 255]])
    with pytest.raises(ValueError, match='percentile'):
        to_uint8(np.array([[0.0, 3.0]]))
    with pytest.raises(ValueError, match='to_uint8 rule'):
        LoadImageFromFile(to_uint8='gamma')


def test_percentile_rule_by_hand():
    band = np.arange(101, dtype=np.uint16).reshape(1, 101)  # values 0..100
    img = np.stack([band, band * 10, np.zeros_like(band)], axis=-1)
    out = to_uint8(img, dict(type='percentile', low=20, high=70))
    # band 0: the 20th..70th percentiles are 20..70; x=50 -> (50-20)*255/50 = 153
    assert out[0, 50, 0] == 153 and out[0, 20, 0] == 0 and out[0, 5, 0] == 0
    assert out[0, 70, 0] == 255 and out[0, 100, 0] == 255
    # per band: band 1 (x10) stretches to the same values (up to float rounding at .5)
    assert np.abs(out[..., 1].astype(int) - out[..., 0]).max() <= 1 and out[0, 50, 1] == 153
    assert (out[..., 2] == 0).all()  # a constant band
    # nodata is left out of the statistics and stays 0: values 50..100 remain, x=80 -> 153
    with_nodata = img.copy()
    with_nodata[0, :50, 0] = 65535
    out = to_uint8(with_nodata, dict(type='percentile', low=0, high=100, nodata=65535))
    assert (out[0, :50, 0] == 0).all() and out[0, 100, 0] == 255 and out[0, 80, 0] == 153


def test_tiff_through_tifffile(tmp_path):
    tifffile = pytest.importorskip('tifffile')
    img8, img12, _, _ = _pair(tmp_path)
    rgb12 = np.ascontiguousarray(img12[..., ::-1])
    tifffile.imwrite(tmp_path / 'a.tif', rgb12)  # (H, W, 3) RGB, contiguous
    np.testing.assert_array_equal(
        LoadImageFromFile()(dict(img_path=str(tmp_path / 'a.tif')))['img'], img8
    )
    # four planar bands (C, H, W): the first three are R, G, B
    nir = np.full(img12.shape[:2], 7, np.uint16)
    planar = np.concatenate([rgb12.transpose(2, 0, 1), nir[None]], axis=0)
    tifffile.imwrite(tmp_path / 'b.tif', planar, photometric='minisblack', planarconfig='separate')
    out = LoadImageFromFile()(dict(img_path=str(tmp_path / 'b.tif')))['img']
    np.testing.assert_array_equal(out, img8)


def test_same_detections_in_inference_sliced_inference_and_drawings(tmp_path):
    from ai4rs.apis import inference_detector, inference_detector_by_patches, init_detector

    img8, img12, p8, p16 = _pair(tmp_path, size=(64, 64))
    torch.manual_seed(0)
    model = init_detector(QUICKSTART, cfg_options={'model.test_cfg.score_thr': 0.0})
    for inputs in ((p8, p16), (img8, img12)):
        a, b = (inference_detector(model, x) for x in inputs)
        assert len(a.pred_instances) > 0
        torch.testing.assert_close(
            a.pred_instances.bboxes.tensor, b.pred_instances.bboxes.tensor, rtol=0, atol=0
        )
        torch.testing.assert_close(a.pred_instances.scores, b.pred_instances.scores, rtol=0, atol=0)
    a, b = (
        inference_detector_by_patches(model, x, sizes=(32,), steps=(24,), progress=False)
        for x in (p8, p16)
    )
    assert len(a.pred_instances) > 0
    torch.testing.assert_close(a.pred_instances.scores, b.pred_instances.scores, rtol=0, atol=0)
    # the drawings read the file by the same rule
    np.testing.assert_array_equal(read_image(p16), img8)


def test_split_keeps_the_bit_depth(tmp_path):
    from ai4rs.datasets.preparation.dota_split import ImageReadError, split_dataset, split_image

    (tmp_path / 'src').mkdir()
    img8, img12, _, p16 = _pair(tmp_path / 'src', size=(20, 20))
    summary = split_dataset(
        [str(tmp_path / 'src')],
        None,
        str(tmp_path / 'out'),
        sizes=[10],
        gaps=[0],
        nproc=1,
        progress=False,
    )
    assert summary['failed'] == [] and summary['patches'] == 8
    patch = cv2.imread(
        str(tmp_path / 'out' / 'images' / 'img12__10__0___0.png'), cv2.IMREAD_UNCHANGED
    )
    assert patch.dtype == np.uint16
    np.testing.assert_array_equal(patch, img12[:10, :10])
    with pytest.raises(ImageReadError, match='cannot hold its depth'):
        split_image(
            p16,
            None,
            sizes=[10],
            gaps=[0],
            img_rate_thr=0.6,
            iof_thr=0.7,
            no_padding=False,
            padding_value=0,
            img_out_dir=str(tmp_path),
            ann_out_dir=str(tmp_path),
            save_ext='.jpg',
        )
