"""DOTA img_split: windows, object assignment, padding, naming, CLI, failures."""

import importlib.util
import json
import logging
import os.path as osp

import cv2
import numpy as np
import pytest

from ai4rs.datasets import DOTADataset
from ai4rs.datasets.preparation.dota_split import (
    assign_objects,
    patch_id,
    polygon_window_iofs,
    scaled_sizes_and_gaps,
    split_dataset,
)
from ai4rs.datasets.sliding_windows import crop_patch, get_sliding_windows, window_starts

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO_ROOT, 'tools', 'data', 'dota', 'split', 'img_split.py')
PAD = (104, 116, 124)


def load_tool():
    spec = importlib.util.spec_from_file_location('img_split_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- windows
@pytest.mark.parametrize(
    'length, size, step, expected',
    [
        (10, 10, 8, [0]),  # fits in one window
        (6, 10, 8, [0]),  # smaller than a window
        (25, 10, 8, [0, 8, 15]),  # ceil(15/8 + 1) = 3 starts, the last moved back to 25 - 10
        (26, 10, 8, [0, 8, 16]),  # ceil(16/8 + 1) = 3, the last ends exactly at 26
        (2500, 1024, 824, [0, 824, 1476]),
    ],
)
def test_window_starts_by_hand(length, size, step, expected):
    assert window_starts(length, size, step) == expected


def test_sliding_windows_product_order_and_rate_filter():
    # 25 x 7 image; size 10 (gap 2): 3 x-starts, 1 y-start, 70% of each window inside -> kept.
    # size 20 (gap 5): x-starts [0, 5], only 35% inside -> dropped.
    windows = get_sliding_windows(25, 7, sizes=[10, 20], gaps=[2, 5], img_rate_thr=0.6)
    np.testing.assert_array_equal(windows, [[0, 0, 10, 10], [8, 0, 18, 10], [15, 0, 25, 10]])
    # x-major order of (x, y) pairs
    windows = get_sliding_windows(18, 18, sizes=[10], gaps=[2], img_rate_thr=0.6)
    np.testing.assert_array_equal(windows[:, :2], [[0, 0], [0, 8], [8, 0], [8, 8]])


def test_sliding_windows_fallback_keeps_the_best_ones():
    # 30 x 4 with size 10: every window is 40% inside, none passes 0.6 -> all kept
    windows = get_sliding_windows(30, 4, sizes=[10], gaps=[2], img_rate_thr=0.6)
    np.testing.assert_array_equal(windows[:, 0], [0, 8, 16, 20])
    # 12 x 4 with sizes 10 and 16: rates 0.4 (two windows) and 12*4/256 -> only the 0.4 ones
    windows = get_sliding_windows(12, 4, sizes=[10, 16], gaps=[5, 5], img_rate_thr=0.6)
    np.testing.assert_array_equal(windows, [[0, 0, 10, 10], [2, 0, 12, 10]])


def test_rates_scale_windows_not_images():
    assert scaled_sizes_and_gaps([1024], [500], [0.5, 1.0, 1.5]) == (
        [2048, 1024, 682],
        [1000, 500, 333],
    )
    with pytest.raises(ValueError, match='larger than its gap'):
        get_sliding_windows(100, 100, [10], [10])


# ------------------------------------------------------------------------- assignment
def square(x1, y1, x2, y2):
    return [x1, y1, x2, y1, x2, y2, x1, y2]


def test_iof_by_hand_and_threshold_is_inclusive():
    windows = np.array([[0, 0, 10, 10], [10, 0, 20, 10]])
    polys = np.array(
        [
            square(2, 2, 6, 6),  # inside window 0
            square(3, 0, 13, 10),  # 70 % in window 0, 30 % in window 1
            [10, 2, 13, 5, 10, 8, 7, 5],  # diamond centred on x = 10: half in each
            square(30, 30, 40, 40),  # nowhere
            [0, 0, 5, 5, 0, 0, 5, 5],  # zero area: never assigned
        ],
        dtype=float,
    )
    iofs = polygon_window_iofs(polys, windows)
    np.testing.assert_allclose(iofs, [[1, 0], [0.7, 0.3], [0.5, 0.5], [0, 0], [0, 0]], atol=1e-12)
    assigned = assign_objects(polys, windows, iof_thr=0.7)
    np.testing.assert_array_equal(assigned[0][0], [0, 1])  # 0.7 >= 0.7
    np.testing.assert_array_equal(assigned[0][1], [False, True])  # the second is truncated
    np.testing.assert_array_equal(assigned[1][0], [])
    assigned = assign_objects(polys, windows, iof_thr=0.5)
    np.testing.assert_array_equal(assigned[1][0], [2])
    assert assigned[1][1].tolist() == [True]


def test_iof_of_a_rotated_polygon_matches_shapely_free_computation():
    # a square of side 10 rotated 45 deg (diamond), centred at (10, 10); the window
    # x <= 10 holds exactly half of it, the window y <= 5 holds the top triangle
    # whose height is 10*sqrt(2)/2 - 5, i.e. area (h)^2 out of 100.
    r = 10 * np.sqrt(2) / 2
    diamond = np.array([[10, 10 - r, 10 + r, 10, 10, 10 + r, 10 - r, 10]])
    windows = np.array([[0, 0, 10, 30], [0, 0, 30, 5]])
    h = r - 5
    np.testing.assert_allclose(
        polygon_window_iofs(diamond, windows), [[0.5, h * h / 100]], atol=1e-9
    )


def test_patch_id_and_crop_padding():
    assert patch_id('P0001', [824, 1648, 1848, 2672]) == 'P0001__1024__824___1648'
    img = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    patch = crop_patch(img, [4, 2, 10, 8], padding_value=PAD)
    assert patch.shape == (6, 6, 3)
    np.testing.assert_array_equal(patch[:3, :3], img[2:5, 4:7])
    assert (patch[3:] == PAD).all() and (patch[:, 3:] == PAD).all()
    assert crop_patch(img, [4, 2, 10, 8], no_padding=True).shape == (3, 3, 3)


# ----------------------------------------------------------------------- whole split
LABELS = """imagesource:GoogleEarth
gsd:0.5
2 2 6 2 6 6 2 6 plane 1
11 3 14 3 14 8 11 8 ship 0
5.5 9 9.5 9 9.5 13 5.5 13 harbor 0
only three tokens
"""


def make_source(root, name='P0001', w=22, h=14, labels=LABELS, seed=0):
    img_dir, ann_dir = root / 'images', root / 'labelTxt'
    img_dir.mkdir(parents=True, exist_ok=True)
    ann_dir.mkdir(parents=True, exist_ok=True)
    img = np.random.RandomState(seed).randint(0, 255, (h, w, 3), dtype=np.uint8)
    cv2.imwrite(str(img_dir / f'{name}.png'), img)
    if labels is not None:
        (ann_dir / f'{name}.txt').write_text(labels)
    return img


def read_lines(path):
    return [line.split() for line in open(path).read().splitlines()]


def test_split_writes_patches_and_annfiles(tmp_path, caplog):
    img = make_source(tmp_path / 'src')
    save = tmp_path / 'out'
    logger = logging.getLogger('test_img_split')
    with caplog.at_level(logging.WARNING, logger='test_img_split'):
        summary = split_dataset(
            [str(tmp_path / 'src/images')],
            [str(tmp_path / 'src/labelTxt')],
            str(save),
            sizes=[10],
            gaps=[2],
            img_rate_thr=0.6,
            iof_thr=0.7,
            padding_value=list(PAD),
            nproc=1,
            logger=logger,
            progress=False,
        )
    # the short line is skipped with a warning naming file and line
    assert any('P0001.txt, line 6' in r.message for r in caplog.records)
    # by hand: x-starts of 22 with size 10 / step 8: [0, 8, 12]; y of 14: [0, 4]
    xs, ys = [0, 8, 12], [0, 4]
    expected = {f'P0001__10__{x}___{y}' for x in xs for y in ys}
    assert summary == dict(images=1, patches=6, failed=[])
    assert {p.stem for p in (save / 'images').iterdir()} == expected
    assert {p.stem for p in (save / 'annfiles').iterdir()} == expected
    for x in xs:
        for y in ys:
            patch = cv2.imread(str(save / 'images' / f'P0001__10__{x}___{y}.png'))
            np.testing.assert_array_equal(patch, img[y : y + 10, x : x + 10])
    # plane (2..6, 2..6): whole in windows starting at x 0 and y 0 -> difficulty kept (1)
    assert read_lines(save / 'annfiles/P0001__10__0___0.txt') == [
        ['2.0', '2.0', '6.0', '2.0', '6.0', '6.0', '2.0', '6.0', 'plane', '1']
    ]
    # ship (11..14, 3..8) in window x 8..18, y 0..10: whole, translated by -8
    assert read_lines(save / 'annfiles/P0001__10__8___0.txt') == [
        ['3.0', '3.0', '6.0', '3.0', '6.0', '8.0', '3.0', '8.0', 'ship', '0']
    ]
    # window x 0..10, y 4..14: plane 2..6 x 4..6 of 4..6 -> iof 0.5, dropped;
    # harbor (5.5..9.5, 9..13): whole; translated, not clipped
    assert read_lines(save / 'annfiles/P0001__10__0___4.txt') == [
        ['5.5', '5.0', '9.5', '5.0', '9.5', '9.0', '5.5', '9.0', 'harbor', '0']
    ]
    # window x 12..22, y 0..10: ship x 12..14 of 11..14 -> iof 2/3 < 0.7 -> empty file
    assert read_lines(save / 'annfiles/P0001__10__12___0.txt') == []
    # window x 8..18, y 4..14: ship y 4..8 of 3..8 -> iof 0.8, truncated -> difficulty 2,
    # coordinates not clipped (y 3 - 4 = -1); harbor x 8..9.5 of 5.5..9.5 -> 3/8, dropped
    assert read_lines(save / 'annfiles/P0001__10__8___4.txt') == [
        ['3.0', '-1.0', '6.0', '-1.0', '6.0', '4.0', '3.0', '4.0', 'ship', '2']
    ]
    # the split annotation files are readable by DOTADataset
    ds = DOTADataset(
        ann_file=str(save / 'annfiles'), data_prefix=dict(img_path=str(save / 'images')), diff_thr=1
    )
    assert len(ds) == 6
    infos = {ds.get_data_info(i)['img_id']: ds.get_data_info(i) for i in range(len(ds))}
    assert infos['P0001__10__8___4']['instances'][0]['ignore_flag'] == 1
    assert osp.isfile(infos['P0001__10__8___4']['img_path'])


def test_edge_patches_are_padded_bottom_right(tmp_path):
    img = make_source(tmp_path / 'src', w=16, h=7, labels='')
    save = tmp_path / 'out'
    split_dataset(
        [str(tmp_path / 'src/images')],
        None,
        str(save),
        sizes=[10],
        gaps=[2],
        padding_value=list(PAD),
        progress=False,
        logger=logging.getLogger('t'),
    )
    # x-starts [0, 6]; the height 7 < 10 -> 70 % inside, kept, padded to 10 rows
    names = sorted(p.name for p in (save / 'images').iterdir())
    assert names == ['P0001__10__0___0.png', 'P0001__10__6___0.png']
    patch = cv2.imread(str(save / 'images' / 'P0001__10__6___0.png'))
    assert patch.shape == (10, 10, 3)
    np.testing.assert_array_equal(patch[:7], img[:, 6:16])
    assert (patch[7:] == PAD).all()
    # annotation files exist for unlabelled images too, and are empty
    assert (save / 'annfiles' / 'P0001__10__6___0.txt').read_text() == ''

    save2 = tmp_path / 'out2'
    split_dataset(
        [str(tmp_path / 'src/images')],
        None,
        str(save2),
        sizes=[10],
        gaps=[2],
        no_padding=True,
        progress=False,
        logger=logging.getLogger('t'),
    )
    assert cv2.imread(str(save2 / 'images' / 'P0001__10__6___0.png')).shape == (7, 10, 3)


def test_refuses_existing_save_dir(tmp_path):
    make_source(tmp_path / 'src')
    (tmp_path / 'out').mkdir()
    with pytest.raises(FileExistsError, match='already exists'):
        split_dataset([str(tmp_path / 'src/images')], None, str(tmp_path / 'out'), progress=False)
    assert list((tmp_path / 'out').iterdir()) == []


def test_unreadable_image_is_reported_and_others_split(tmp_path, caplog):
    make_source(tmp_path / 'src', name='P0001')
    make_source(tmp_path / 'src', name='P0003', seed=1)
    (tmp_path / 'src/images/P0002.png').write_bytes(b'not a png at all')
    logger = logging.getLogger('test_img_split_bad')
    with caplog.at_level(logging.ERROR, logger='test_img_split_bad'):
        summary = split_dataset(
            [str(tmp_path / 'src/images')],
            [str(tmp_path / 'src/labelTxt')],
            str(tmp_path / 'out'),
            sizes=[10],
            gaps=[2],
            nproc=2,
            logger=logger,
            progress=False,
        )
    assert summary['images'] == 2 and summary['patches'] == 12
    assert [osp.basename(p) for p, _ in summary['failed']] == ['P0002.png']
    assert any('P0002.png' in r.message for r in caplog.records)
    stems = {p.stem.split('__')[0] for p in (tmp_path / 'out/images').iterdir()}
    assert stems == {'P0001', 'P0003'}


def test_parallel_and_serial_outputs_are_identical(tmp_path):
    for i in range(3):
        make_source(tmp_path / 'src', name=f'P000{i}', seed=i)
    outs = []
    for nproc in (1, 2):
        save = tmp_path / f'out{nproc}'
        split_dataset(
            [str(tmp_path / 'src/images')],
            [str(tmp_path / 'src/labelTxt')],
            str(save),
            sizes=[10],
            gaps=[2],
            nproc=nproc,
            progress=False,
            logger=logging.getLogger('t'),
        )
        outs.append({p.name: p.read_bytes() for p in sorted((save / 'annfiles').iterdir())})
    assert outs[0] == outs[1] and len(outs[0]) == 18


def test_cli_base_json_with_overrides(tmp_path, capsys):
    make_source(tmp_path / 'src')
    base = dict(
        nproc=1,
        img_dirs=[str(tmp_path / 'src/images')],
        ann_dirs=[str(tmp_path / 'src/labelTxt')],
        sizes=[1024],
        gaps=[200],
        rates=[1.0],
        img_rate_thr=0.6,
        iof_thr=0.7,
        no_padding=False,
        padding_value=list(PAD),
        save_dir=str(tmp_path / 'from_json'),
        save_ext='.png',
    )
    cfg = tmp_path / 'cfg.json'
    cfg.write_text(json.dumps(base))
    tool = load_tool()
    # command-line --sizes/--gaps/--save-dir override the json
    rc = tool.main(
        [
            '--base-json',
            str(cfg),
            '--sizes',
            '10',
            '--gaps',
            '2',
            '--save-dir',
            str(tmp_path / 'cli'),
            '--no-progress',
        ]
    )
    assert rc == 0
    assert len(list((tmp_path / 'cli/images').iterdir())) == 6
    assert not (tmp_path / 'from_json').exists()
    assert 'Split 1 images into 6 patches' in capsys.readouterr().out
    # the json alone: one padded 1024 window
    assert tool.main(['--base-json', str(cfg), '--no-progress']) == 0
    patch = cv2.imread(str(tmp_path / 'from_json/images/P0001__1024__0___0.png'))
    assert patch.shape == (1024, 1024, 3) and (patch[20:, 30:] == PAD).all()
    # an existing save dir is refused with a message and exit status 2
    assert tool.main(['--base-json', str(cfg), '--no-progress']) == 2
    assert 'already exists' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.main(['--img-dirs', str(tmp_path), '--save-ext', '.gif'])


@pytest.mark.parametrize(
    'name',
    [
        'ss_train',
        'ss_val',
        'ss_trainval',
        'ss_test',
        'ms_train',
        'ms_val',
        'ms_trainval',
        'ms_test',
    ],
)
def test_shipped_split_configs(name):
    path = osp.join(osp.dirname(TOOL), 'split_configs', f'{name}.json')
    cfg = json.load(open(path))
    tool = load_tool()
    args = tool.parse_args(['--base-json', path])
    assert args.sizes == [1024] and args.img_rate_thr == 0.6 and args.iof_thr == 0.7
    assert args.padding_value == [104, 116, 124] and args.save_ext == '.png'
    assert args.gaps == ([200] if name.startswith('ss') else [500])
    assert args.rates == ([1.0] if name.startswith('ss') else [0.5, 1.0, 1.5])
    assert (args.ann_dirs is None) == name.endswith('test')
    assert cfg['save_dir'].rstrip('/').endswith(name[3:])


def test_cli_save_dir_required_and_exit_status_when_images_skipped(tmp_path, capsys):
    make_source(tmp_path / 'src', name='P0001')
    (tmp_path / 'src/images/P0002.png').write_bytes(b'not a png at all')
    tool = load_tool()
    # no --save-dir: a usage error naming the option (the old default '.' always existed)
    with pytest.raises(SystemExit) as exit_info:
        tool.main(['--img-dirs', str(tmp_path / 'src/images'), '--no-progress'])
    assert exit_info.value.code == 2
    assert '--save-dir is required' in capsys.readouterr().err
    # one unreadable image: the other is split, exit status 1, the last line says so
    rc = tool.main(
        [
            '--img-dirs',
            str(tmp_path / 'src/images'),
            '--sizes',
            '10',
            '--gaps',
            '2',
            '--save-dir',
            str(tmp_path / 'out'),
            '--nproc',
            '1',
            '--no-progress',
        ]
    )
    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith('img_split: 1 of 2 images could not be split and were skipped')
    assert any('P0002.png' in line for line in err[:-1])
    assert len(list((tmp_path / 'out/images').iterdir())) == 6
