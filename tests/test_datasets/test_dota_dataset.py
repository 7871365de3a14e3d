"""DOTADataset: parsing of DOTA label files, errors, filtering, test mode, pipeline."""

import cv2
import numpy as np
import pytest
from mmengine.registry import DefaultScope

from ai4rs.datasets import DOTADataset, DOTAv2Dataset, DOTAv15Dataset, load_dota_labels
from ai4rs.registry import DATASETS

RAW_P0001 = """imagesource:GoogleEarth
gsd:0.146343590398
10 20 50 20 50 40 10 40 plane 0
100.5 200 150 210 140 260 90 250 small-vehicle 1
1 2 3 2 3 4 1 4 harbor 2
"""


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make_dataset(tmp_path, files, cls=DOTADataset, **kwargs):
    for name, text in files.items():
        write(tmp_path / 'annfiles' / name, text)
    return cls(
        data_root=str(tmp_path),
        ann_file='annfiles/',
        data_prefix=dict(img_path='images/'),
        **kwargs,
    )


def test_raw_file_with_headers_is_parsed(tmp_path):
    ds = make_dataset(tmp_path, {'P0001.txt': RAW_P0001})
    assert len(ds) == 1
    info = ds.get_data_info(0)
    assert info['img_id'] == 'P0001'
    assert info['file_name'] == 'P0001.png'
    assert info['img_path'] == str(tmp_path / 'images' / 'P0001.png')
    inst = info['instances']
    assert [i['bbox'] for i in inst] == [
        [10, 20, 50, 20, 50, 40, 10, 40],
        [100.5, 200, 150, 210, 140, 260, 90, 250],
        [1, 2, 3, 2, 3, 4, 1, 4],
    ]
    classes = DOTADataset.METAINFO['classes']
    assert [i['bbox_label'] for i in inst] == [
        classes.index('plane'),
        classes.index('small-vehicle'),
        classes.index('harbor'),
    ]
    # default diff_thr=100: nothing is ignored
    assert [i['ignore_flag'] for i in inst] == [0, 0, 0]
    assert ds.get_cat_ids(0) == [0, 4, 12]


def test_gsd_and_line_numbers_of_the_reader(tmp_path):
    labels = load_dota_labels(str(write(tmp_path / 'a.txt', RAW_P0001)))
    assert labels.gsd == pytest.approx(0.146343590398)
    assert labels.line_numbers == [3, 4, 5]
    assert labels.names == ['plane', 'small-vehicle', 'harbor']
    np.testing.assert_array_equal(labels.difficulties, [0, 1, 2])
    assert labels.polygons.shape == (3, 8)


@pytest.mark.parametrize('diff_thr, expected', [(0, [0, 1, 1]), (1, [0, 0, 1]), (2, [0, 0, 0])])
def test_diff_thr_sets_ignore_flags(tmp_path, diff_thr, expected):
    ds = make_dataset(tmp_path, {'P0001.txt': RAW_P0001}, diff_thr=diff_thr)
    assert [i['ignore_flag'] for i in ds.get_data_info(0)['instances']] == expected


def test_windows_line_endings_and_byte_order_mark(tmp_path):
    path = tmp_path / 'annfiles' / 'P0004.txt'
    path.parent.mkdir()
    path.write_bytes(
        b'\xef\xbb\xbfimagesource:GoogleEarth\r\ngsd:0.2\r\n0 0 4 0 4 4 0 4 ship 1\r\n'
    )
    ds = DOTADataset(
        data_root=str(tmp_path),
        ann_file='annfiles/',
        data_prefix=dict(img_path='images/'),
        diff_thr=0,
    )
    assert ds.get_data_info(0)['instances'] == [
        dict(bbox=[0, 0, 4, 0, 4, 4, 0, 4], bbox_label=6, ignore_flag=1)
    ]


def test_nine_field_line_defaults_to_difficulty_zero(tmp_path):
    ds = make_dataset(tmp_path, {'a.txt': '0 0 4 0 4 4 0 4 ship\n'}, diff_thr=-1)
    inst = ds.get_data_info(0)['instances']
    assert inst[0]['bbox_label'] == DOTADataset.METAINFO['classes'].index('ship')
    # difficulty 0 > diff_thr -1 -> ignored: the missing field was read as 0
    assert inst[0]['ignore_flag'] == 1


def test_empty_file_is_an_image_without_objects_and_filter_empty_gt(tmp_path):
    files = {
        'empty.txt': '',
        'header_only.txt': 'imagesource:GoogleEarth\ngsd:null\n',
        'one.txt': '0 0 4 0 4 4 0 4 ship 0\n',
    }
    ds = make_dataset(tmp_path, files)
    ids = [ds.get_data_info(i)['img_id'] for i in range(len(ds))]
    assert ids == ['empty', 'header_only', 'one']  # sorted
    assert ds.get_data_info(0)['instances'] == []
    assert ds.get_data_info(1)['instances'] == []
    assert ds.get_cat_ids(0) == []

    filtered = DOTADataset(
        data_root=str(tmp_path),
        ann_file='annfiles/',
        data_prefix=dict(img_path='images/'),
        filter_cfg=dict(filter_empty_gt=True),
    )
    assert [filtered.get_data_info(i)['img_id'] for i in range(len(filtered))] == ['one']
    # test mode never filters
    test_ds = DOTADataset(
        data_root=str(tmp_path),
        ann_file='annfiles/',
        data_prefix=dict(img_path='images/'),
        filter_cfg=dict(filter_empty_gt=True),
        test_mode=True,
    )
    assert len(test_ds) == 3


@pytest.mark.parametrize(
    'bad_line, words',
    [
        ('10 20 50 20 50 40 plane 0', ['9 or 10 fields', 'got 8 fields']),  # a corner missing
        ('10 20 50 20 50 40 10 plane 0', ['8 numbers']),  # a coordinate missing
        ('10 20 50 20 50 40 10 4x plane 0', ['8 numbers']),
        ('10 20 50 20 50 40 10 40 plane easy', ['difficulty', "'easy'"]),
        ('10 20 50 20 50 40 10 40 plane 0 extra', ['got 11 fields']),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, bad_line, words):
    text = 'imagesource:GoogleEarth\n0 0 4 0 4 4 0 4 ship 0\n' + bad_line + '\n'
    with pytest.raises(ValueError) as e:
        make_dataset(tmp_path, {'P0002.txt': text})
    msg = str(e.value)
    assert 'P0002.txt' in msg and 'line 3' in msg
    for w in words:
        assert w in msg


def test_unknown_class_names_file_and_line(tmp_path):
    text = '0 0 4 0 4 4 0 4 ship 0\n\n0 0 4 0 4 4 0 4 container-crane 0\n'
    with pytest.raises(ValueError) as e:
        make_dataset(tmp_path, {'P0003.txt': text})
    msg = str(e.value)
    assert 'P0003.txt' in msg and 'line 3' in msg and "'container-crane'" in msg


def test_v15_and_v2_classes(tmp_path):
    text = '0 0 4 0 4 4 0 4 container-crane 0\n'
    ds15 = make_dataset(tmp_path, {'a.txt': text}, cls=DOTAv15Dataset)
    assert len(DOTAv15Dataset.METAINFO['classes']) == 16
    assert ds15.get_cat_ids(0) == [15]
    assert len(ds15.metainfo['palette']) == 16
    assert len(DOTAv2Dataset.METAINFO['classes']) == 18
    assert DOTAv2Dataset.METAINFO['classes'][-2:] == ('airport', 'helipad')
    assert len(DOTAv2Dataset.METAINFO['palette']) == 18
    write(tmp_path / 'annfiles' / 'b.txt', '0 0 4 0 4 4 0 4 helipad 1\n')
    ds2 = DOTAv2Dataset(
        data_root=str(tmp_path), ann_file='annfiles/', data_prefix=dict(img_path='images/')
    )
    assert ds2.get_cat_ids(1) == [17]


def test_missing_or_empty_ann_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere'):
        DOTADataset(
            data_root=str(tmp_path), ann_file='nowhere/', data_prefix=dict(img_path='images/')
        )
    (tmp_path / 'annfiles').mkdir()
    with pytest.raises(ValueError, match='no .txt file'):
        DOTADataset(
            data_root=str(tmp_path), ann_file='annfiles/', data_prefix=dict(img_path='images/')
        )


def test_test_mode_lists_images_when_ann_file_is_empty(tmp_path):
    img_dir = tmp_path / 'test' / 'images'
    img_dir.mkdir(parents=True)
    for name in ('P0009.png', 'P0002.png', 'P0005.jpg', 'notes.txt'):
        (img_dir / name).write_bytes(b'x')
    ds = DOTADataset(
        data_root=str(tmp_path),
        ann_file='',
        data_prefix=dict(img_path='test/images/'),
        test_mode=True,
    )
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    assert [i['img_id'] for i in infos] == ['P0002', 'P0009']
    assert all(i['instances'] == [] for i in infos)
    assert infos[0]['img_path'] == str(img_dir / 'P0002.png')
    ds_jpg = DOTADataset(
        data_root=str(tmp_path),
        ann_file='',
        img_suffix='.jpg',
        data_prefix=dict(img_path='test/images/'),
        test_mode=True,
    )
    assert [ds_jpg.get_data_info(i)['file_name'] for i in range(len(ds_jpg))] == ['P0005.jpg']


def test_min_size_filter_reads_real_image_sizes(tmp_path):
    files = {'big.txt': '0 0 4 0 4 4 0 4 ship 0\n', 'small.txt': '0 0 4 0 4 4 0 4 ship 0\n'}
    (tmp_path / 'images').mkdir()
    cv2.imwrite(str(tmp_path / 'images' / 'big.png'), np.zeros((40, 50, 3), np.uint8))
    cv2.imwrite(str(tmp_path / 'images' / 'small.png'), np.zeros((40, 20, 3), np.uint8))
    ds = make_dataset(tmp_path, files, filter_cfg=dict(min_size=32))
    assert [ds.get_data_info(i)['img_id'] for i in range(len(ds))] == ['big']


def build_and_get(tmp_path):
    ds = DATASETS.build(
        dict(
            type='DOTADataset',
            data_root=str(tmp_path),
            ann_file='annfiles/',
            data_prefix=dict(img_path='images/'),
            diff_thr=1,
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations', with_bbox=True, box_type='qbox'),
                dict(type='ConvertBoxType', box_type_mapping=dict(gt_bboxes='rbox')),
                dict(
                    type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape')
                ),
            ],
        )
    )
    return ds, ds[0]


def test_built_from_registry_with_pipeline_decodes_real_image(tmp_path):
    img = np.random.RandomState(0).randint(0, 255, (48, 64, 3), dtype=np.uint8)
    (tmp_path / 'images').mkdir()
    cv2.imwrite(str(tmp_path / 'images' / 'P0001.png'), img)
    write(tmp_path / 'annfiles' / 'P0001.txt', RAW_P0001)
    # the Runner makes 'ai4rs' the default scope (config default_scope); do the same here
    with DefaultScope.overwrite_default_scope('ai4rs'):
        ds, out = build_and_get(tmp_path)
    assert type(ds).__name__ == 'DOTADataset'
    assert out['inputs'].shape == (3, 48, 64)
    np.testing.assert_array_equal(out['inputs'].numpy().transpose(1, 2, 0), img)
    sample = out['data_samples']
    assert sample.img_id == 'P0001' and sample.ori_shape == (48, 64)
    # difficulty 2 > diff_thr 1 -> the harbor is ignored
    assert sample.gt_instances.labels.tolist() == [0, 4]
    assert sample.ignored_instances.labels.tolist() == [12]
    rboxes = sample.gt_instances.bboxes.tensor
    assert rboxes.shape == (2, 5)
    # the plane is the axis-aligned rectangle 10..50 x 20..40
    np.testing.assert_allclose(rboxes[0, :2].numpy(), [30, 30], atol=1e-4)
    np.testing.assert_allclose(sorted(rboxes[0, 2:4].tolist()), [20, 40], atol=1e-4)
