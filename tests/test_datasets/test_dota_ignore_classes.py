"""DOTADataset(ignore_classes=...): objects of named classes outside the dataset's are left out."""

import logging

import pytest
from mmengine.logging import MMLogger

from ai4rs.datasets import DOTADataset, DOTAv2Dataset, DOTAv15Dataset

# a DOTA-v2.0 style file: base classes (plane, ship), novel ones (helipad, airport, harbor)
P1 = """imagesource:GoogleEarth
gsd:0.2
10 20 50 20 50 40 10 40 plane 0
0 0 8 0 8 8 0 8 helipad 0
20 20 30 20 30 30 20 30 ship 1
1 1 9 1 9 9 1 9 airport 0
2 2 6 2 6 6 2 6 helipad 1
"""
P2 = """0 0 4 0 4 4 0 4 harbor 0
5 5 9 5 9 9 5 9 ship 0
"""
P3 = """0 0 4 0 4 4 0 4 helipad 0
"""
BASE = ('plane', 'ship')


def build(tmp_path, files, cls=DOTADataset, **kwargs):
    for name, text in files.items():
        path = tmp_path / 'annfiles' / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return cls(
        data_root=str(tmp_path),
        ann_file='annfiles/',
        data_prefix=dict(img_path='images/'),
        **kwargs,
    )


class LogRecords(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def log_messages():
    logger = MMLogger.get_current_instance()
    handler = LogRecords()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler.messages
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def test_ignored_lines_are_skipped_and_counted_once(tmp_path, log_messages):
    ds = build(
        tmp_path,
        {'P1.txt': P1, 'P2.txt': P2, 'P3.txt': P3},
        metainfo=dict(classes=BASE),
        ignore_classes=['helipad', 'airport', 'harbor', 'helicopter'],
    )
    assert ds.metainfo['classes'] == BASE
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    assert [i['img_id'] for i in infos] == ['P1', 'P2', 'P3']
    # P1 keeps lines 3 (plane) and 5 (ship), in file order, with their own polygons
    assert [i['bbox'] for i in infos[0]['instances']] == [
        [10, 20, 50, 20, 50, 40, 10, 40],
        [20, 20, 30, 20, 30, 30, 20, 30],
    ]
    assert ds.get_cat_ids(0) == [0, 1]
    assert [i['bbox'] for i in infos[1]['instances']] == [[5, 5, 9, 5, 9, 9, 5, 9]]
    assert ds.get_cat_ids(1) == [1]
    assert infos[2]['instances'] == []  # only an ignored object: an image without objects
    logged = [m for m in log_messages if 'ignore_classes' in m]
    assert len(logged) == 1, log_messages
    # hand count: helipad 2 (P1) + 1 (P3), airport 1, harbor 1, helicopter none
    assert 'left out 5 object(s)' in logged[0]
    assert 'helipad: 3, airport: 1, harbor: 1, helicopter: 0' in logged[0]


def test_filter_empty_gt_drops_an_image_of_only_ignored_objects(tmp_path):
    ds = build(
        tmp_path,
        {'P1.txt': P1, 'P2.txt': P2, 'P3.txt': P3},
        metainfo=dict(classes=BASE),
        ignore_classes=('helipad', 'airport', 'harbor'),
        filter_cfg=dict(filter_empty_gt=True),
    )
    assert [ds.get_data_info(i)['img_id'] for i in range(len(ds))] == ['P1', 'P2']


def test_other_unknown_classes_still_raise(tmp_path):
    with pytest.raises(ValueError) as e:
        build(
            tmp_path,
            {'P1.txt': P1, 'P2.txt': P2},
            metainfo=dict(classes=BASE),
            ignore_classes=['helipad', 'airport'],  # harbor is neither learnt nor ignored
        )
    msg = str(e.value)
    assert 'P2.txt, line 1' in msg and "unknown class 'harbor'" in msg
    assert "ignore_classes: ['helipad', 'airport']" in msg


def test_no_ignore_classes_keeps_the_error(tmp_path):
    with pytest.raises(ValueError, match=r"P1.txt, line 4: unknown class 'helipad'"):
        build(tmp_path, {'P1.txt': P1}, metainfo=dict(classes=BASE))


def test_an_ignored_class_that_is_also_a_dataset_class_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"ignore_classes \['ship'\] are also among"):
        build(
            tmp_path,
            {'P2.txt': P2},
            metainfo=dict(classes=('ship', 'harbor')),
            ignore_classes=['airport', 'ship'],
        )
    # the class lists of the subclasses count too (helipad is a DOTA-v2.0 class)
    with pytest.raises(ValueError, match=r"ignore_classes \['helipad'\] are also among"):
        build(tmp_path, {'P2.txt': P2}, cls=DOTAv2Dataset, ignore_classes=['helipad'])


def test_a_single_string_is_refused(tmp_path):
    with pytest.raises(TypeError, match='list of class names'):
        build(tmp_path, {'P2.txt': P2}, ignore_classes='helipad')


@pytest.mark.parametrize('cls', [DOTAv15Dataset, DOTADataset])
def test_subclasses_inherit_it(tmp_path, cls):
    # DOTA-v2.0 annotations read as v1.0 / v1.5: the v2.0-only classes are left out
    text = (
        '0 0 4 0 4 4 0 4 helipad 0\n'
        '1 1 5 1 5 5 1 5 ship 0\n'
        '2 2 6 2 6 6 2 6 airport 0\n'
        '3 3 7 3 7 7 3 7 harbor 0\n'
    )
    ds = build(tmp_path, {'a.txt': text}, cls=cls, ignore_classes=['airport', 'helipad'])
    classes = cls.METAINFO['classes']
    assert ds.get_cat_ids(0) == [classes.index('ship'), classes.index('harbor')]
    assert [i['bbox'][0] for i in ds.get_data_info(0)['instances']] == [1, 3]
