"""Bad data is found when the dataset is built, or named when an image is read."""

import logging

import cv2
import mmcv
import numpy as np
import pytest
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope

from ai4rs.datasets import DOTADataset
from ai4rs.datasets.dota import degenerate_polygons
from ai4rs.datasets.file_checks import ImageDecodeError, check_image_files, skipped_image_count
from ai4rs.datasets.transforms import LoadImageFromFile

PIPELINE = [dict(type='LoadImageFromFile')]


@pytest.fixture(autouse=True)
def ai4rs_scope():
    """As in a Runner: unscoped type names resolve in ai4rs first."""
    with DefaultScope.overwrite_default_scope('ai4rs'):
        yield


def _project(tmp_path, names, image_names=None):
    (tmp_path / 'annfiles').mkdir()
    (tmp_path / 'images').mkdir()
    rng = np.random.default_rng(0)
    for name in names:
        (tmp_path / 'annfiles' / f'{name}.txt').write_text('0 0 8 0 8 8 0 8 ship 0\n')
    for name in names if image_names is None else image_names:
        cv2.imwrite(
            str(tmp_path / 'images' / f'{name}.png'),
            rng.integers(0, 255, (12, 16, 3), dtype=np.uint8),
        )
    return tmp_path


def _dataset(root, **kwargs):
    return DOTADataset(
        data_root=str(root),
        ann_file='annfiles/',
        data_prefix=dict(img_path='images/'),
        pipeline=PIPELINE,
        **kwargs,
    )


def test_missing_images_are_all_reported_at_build(tmp_path):
    root = _project(tmp_path, ['a', 'b', 'c', 'd'], image_names=['b', 'd'])
    with pytest.raises(FileNotFoundError) as err:
        _dataset(root)
    msg = str(err.value)
    assert msg.startswith('DOTADataset: 2 of 4 image files do not exist')
    assert str(root / 'images' / 'a.png') in msg and str(root / 'images' / 'c.png') in msg
    assert 'b.png' not in msg
    # without a pipeline nothing reads the images (annotation-only use): no check
    DOTADataset(data_root=str(root), ann_file='annfiles/', data_prefix=dict(img_path='images/'))
    check_image_files([str(root / 'images' / 'b.png'), 's3://bucket/x.png'], 'X')


def test_undecodable_image_names_file_and_dataset_or_is_skipped(tmp_path):
    root = _project(tmp_path, ['a', 'b'])
    bad = root / 'images' / 'b.png'
    bad.write_bytes(b'\x89PNG\r\n\x1a\n truncated')
    ds = _dataset(root)
    assert ds[0]['img'].shape == (12, 16, 3)
    with pytest.raises(ImageDecodeError) as err:
        ds[1]
    assert f'DOTADataset: could not decode image {bad}' in str(err.value)
    assert 'skip_bad_images=True' in str(err.value)

    # skipping (training only): another sample comes instead, and the skip is counted
    before = skipped_image_count('DOTADataset')
    skipping = _dataset(root, skip_bad_images=True)
    assert skipping[1]['img_path'] == str(root / 'images' / 'a.png')
    assert skipped_image_count('DOTADataset') >= before + 1
    with pytest.raises(ImageDecodeError):  # test mode must read every image
        _dataset(root, skip_bad_images=True, test_mode=True)[1]
    # an empty file too
    bad.write_bytes(b'')
    with pytest.raises(ImageDecodeError, match='is empty'):
        ds[1]


def test_eight_bit_images_load_exactly_as_with_mmcv(tmp_path):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (9, 11, 3), dtype=np.uint8)
    gray = rng.integers(0, 255, (9, 11), dtype=np.uint8)
    for name, data in (('c.png', img), ('c.jpg', img), ('g.png', gray)):
        cv2.imwrite(str(tmp_path / name), data)
        for color_type in ('color', 'grayscale', 'unchanged'):
            ours = LoadImageFromFile(color_type=color_type)(dict(img_path=str(tmp_path / name)))
            theirs = mmcv.imread(str(tmp_path / name), flag=color_type)
            assert ours['img'].dtype == np.uint8
            np.testing.assert_array_equal(ours['img'], theirs)


def test_degenerate_polygons_dropped_with_one_warning_per_file(tmp_path):
    lines = [
        '0 0 8 0 8 8 0 8 ship 0',  # kept
        '0 0 4 4 8 8 12 12 ship 0',  # collinear
        '5 5 5 5 5 5 5 5 plane 0',  # one point
        '0 0 8 0 nan 8 0 8 ship 0',  # NaN corner
        '0 0 8 8 8 0 0 8 harbor 0',
    ]  # bow-tie order: a real object, kept
    root = tmp_path
    (root / 'annfiles').mkdir()
    (root / 'annfiles' / 'P1.txt').write_text('\n'.join(lines) + '\n')
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        ds = DOTADataset(
            data_root=str(root), ann_file='annfiles/', data_prefix=dict(img_path='images/')
        )
    finally:
        logger.removeHandler(handler)
    boxes = [inst['bbox'] for inst in ds.get_data_info(0)['instances']]
    assert boxes == [[0, 0, 8, 0, 8, 8, 0, 8], [0, 0, 8, 8, 8, 0, 0, 8]]
    warnings = [r.getMessage() for r in records if 'degenerate' in r.getMessage()]
    assert len(warnings) == 1
    assert 'P1.txt: dropped 3 degenerate polygon(s)' in warnings[0]
    assert 'line(s) 2, 3, 4' in warnings[0]
    # the rule itself: hull area (exact, by hand) below 1e-3 px^2
    polys = np.array(
        [
            [0, 0, 1, 0, 1, 1, 0, 1],
            [0, 0, 1, 0, 2, 0, 3, 0.0001],
            [0, 0, 0.01, 0, 0.01, 0.01, 0, 0.01],
        ],
        dtype=np.float64,
    )
    # areas: 1; 0.00015 (a sliver of a triangle); 1e-4
    assert degenerate_polygons(polys).tolist() == [False, True, True]
