"""The helpers every transform shares: one per-object filter, one mosaic placement, one
mix-transform base, one class-text loader.

Expected values are computed by hand here (placements, boxes) or are invariants (a mask's
tight box is its object's box).
"""

import copy
import json

import numpy as np
import pytest

from ai4rs.datasets import load_class_texts
from ai4rs.datasets.transforms import CachedMixUp, CachedMosaic, LoadText, Mosaic, RandomLoadText
from ai4rs.datasets.transforms.instances import keep_instances
from ai4rs.datasets.transforms.mixing import mosaic_paste_coords
from ai4rs.structures.bbox import HorizontalBoxes
from ai4rs.structures.mask import PolygonMasks


def rect(x1, y1, x2, y2):
    return np.array([x1, y1, x2, y1, x2, y2, x1, y2], dtype=np.float64)


def sample(h, w, boxes, labels, masks=True, colour=0):
    """A loaded results dict with one rectangle polygon per box (its tight box is the box)."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    res = dict(
        img=np.full((h, w, 3), colour, dtype=np.uint8),
        img_shape=(h, w),
        img_path=f'img{colour}.png',
        gt_bboxes=HorizontalBoxes(boxes),
        gt_bboxes_labels=np.asarray(labels, dtype=np.int64),
        gt_ignore_flags=np.asarray([i % 2 == 1 for i in range(len(boxes))], dtype=bool),
    )
    if masks:
        res['gt_masks'] = PolygonMasks([[rect(*b)] for b in boxes], h, w)
    return res


class ListOfInfos:
    """A dataset for the mix transforms: ``get_data_info`` returns a copy."""

    def __init__(self, infos):
        self.infos = infos

    def __len__(self):
        return len(self.infos)

    def get_data_info(self, i):
        return copy.deepcopy(self.infos[i])


# ----------------------------------------------------------------------- keep_instances
def test_keep_instances_keeps_every_per_object_key_aligned():
    boxes = [[0, 0, 2, 2], [1, 1, 5, 4], [3, 0, 7, 7], [2, 2, 3, 8]]
    res = sample(10, 10, boxes, [5, 6, 7, 8])
    keep_instances(res, np.array([False, True, False, True]))
    np.testing.assert_array_equal(res['gt_bboxes'].tensor.numpy(), [[1, 1, 5, 4], [2, 2, 3, 8]])
    np.testing.assert_array_equal(res['gt_bboxes_labels'], [6, 8])
    np.testing.assert_array_equal(res['gt_ignore_flags'], [True, True])
    # the masks are the kept objects' masks, in the same order as their boxes
    np.testing.assert_array_equal(
        res['gt_masks'].get_bboxes().tensor.numpy(), res['gt_bboxes'].tensor.numpy()
    )


def test_keep_instances_refuses_keys_that_disagree():
    res = sample(10, 10, [[0, 0, 2, 2], [1, 1, 5, 4]], [0, 1])
    res['gt_masks'] = res['gt_masks'][[0]]
    with pytest.raises(ValueError, match=r"results\['gt_masks'\] holds 1 objects but 2.*img0"):
        keep_instances(res, np.array([True, False]))


def test_random_load_text_keeps_masks_with_their_boxes():
    import random

    random.seed(3)
    texts = [[f'class{i}'] for i in range(6)]
    boxes = [[0, 0, 2, 2], [1, 1, 5, 4], [3, 0, 7, 7], [2, 2, 3, 8]]
    res = sample(10, 10, boxes, [0, 1, 2, 3])
    res['texts'] = texts
    # at most 2 classes: two of the four objects are dropped
    out = RandomLoadText(num_neg_samples=(0, 0), max_num_samples=2)(res)
    assert len(out['gt_bboxes']) == 2
    kept_classes = [int(out['texts'][lb][len('class') :]) for lb in out['gt_bboxes_labels']]
    np.testing.assert_array_equal(out['gt_bboxes'].tensor.numpy(), [boxes[c] for c in kept_classes])
    np.testing.assert_array_equal(
        out['gt_masks'].get_bboxes().tensor.numpy(), out['gt_bboxes'].tensor.numpy()
    )
    np.testing.assert_array_equal(out['gt_ignore_flags'], [c % 2 == 1 for c in kept_classes])


# ------------------------------------------------------------------- mosaic placement
@pytest.mark.parametrize(
    'loc, center, expected',
    [
        # a 24 x 16 image around (20, 41) on a 64 x 64 canvas: the left ones lose 4 columns
        ('top_left', (20, 41), ((0, 25, 20, 41), (4, 0, 24, 16))),
        ('top_right', (20, 41), ((20, 25, 44, 41), (0, 0, 24, 16))),
        ('bottom_left', (20, 41), ((0, 41, 20, 57), (4, 0, 24, 16))),
        ('bottom_right', (20, 41), ((20, 41, 44, 57), (0, 0, 24, 16))),
        # around (50, 60): the bottom-right one keeps its top-left 14 x 4 pixels
        ('top_left', (50, 60), ((26, 44, 50, 60), (0, 0, 24, 16))),
        ('bottom_right', (50, 60), ((50, 60, 64, 64), (0, 0, 14, 4))),
        ('top_right', (50, 60), ((50, 44, 64, 60), (0, 0, 14, 16))),
        ('bottom_left', (50, 60), ((26, 60, 50, 64), (0, 0, 24, 4))),
    ],
)
def test_mosaic_paste_coords_hand_computed(loc, center, expected):
    paste, crop = mosaic_paste_coords(loc, center, (24, 16), (64, 64))
    assert (paste, crop) == expected


def test_mosaic_paste_coords_rejects_unknown_location():
    with pytest.raises(ValueError, match="'middle'"):
        mosaic_paste_coords('middle', (8, 8), (4, 4), (16, 16))


# -------------------------------------------------------------------- mix-transform base
def test_cached_mosaic_moves_masks_with_boxes(monkeypatch):
    """mmdet's CachedMosaic now places polygon masks as mmyolo's Mosaic does."""
    t = CachedMosaic(img_scale=(16, 16), center_ratio_range=(1.0, 1.0), prob=1.0)
    for i in range(4):  # fill the cache
        t(sample(16, 16, [[2, 2, 6, 8]], [i], colour=10 * i))
    monkeypatch.setattr(t, 'get_indexes', lambda cache: [1, 2, 3])
    out = t(sample(8, 16, [[0, 0, 4, 4], [8, 2, 16, 8]], [9, 9], colour=200))
    # centre (16, 16); the first image (8 x 16, ratio 1) has its bottom-right corner there;
    # cached images 1, 2, 3 (16 x 16) fill the other cells
    expected = [[0, 8, 4, 12], [8, 10, 16, 16], [18, 2, 22, 8], [2, 18, 6, 24], [18, 18, 22, 24]]
    np.testing.assert_allclose(out['gt_bboxes'].tensor.numpy(), expected)
    np.testing.assert_array_equal(out['gt_bboxes_labels'], [9, 9, 1, 2, 3])
    np.testing.assert_allclose(out['gt_masks'].get_bboxes().tensor.numpy(), expected)
    assert out['img'].shape == (32, 32, 3) and out['img_shape'] == (32, 32)
    assert (out['img'][8:16, 0:16] == 200).all() and (out['img'][0:8, 0:16] == 114).all()


@pytest.mark.parametrize('cls', [CachedMosaic, Mosaic])
def test_boxes_clipped_to_nothing_follow_each_upstream(cls, monkeypatch):
    """mmdet's CachedMosaic drops a box that lies outside the canvas even after clipping it
    (to an empty box); mmyolo's Mosaic keeps it."""
    empty = [sample(16, 16, [], [], masks=False) for _ in range(4)]
    res = sample(16, 16, [[0, 0, 4, 4], [10, 10, 14, 14]], [7, 8], masks=False)
    # the images meet at (8, 8): the first one is shifted by (-8, -8)
    if cls is CachedMosaic:
        t = CachedMosaic(img_scale=(16, 16), center_ratio_range=(0.5, 0.5))
        for r in empty:  # fill the cache
            t(r)
    else:
        t = Mosaic(img_scale=(16, 16))
        res['dataset'] = ListOfInfos(empty)
        monkeypatch.setattr(t, '_get_center', lambda: (8, 8))
    monkeypatch.setattr(t, 'get_indexes', lambda source: [1, 2, 3])
    out = t(res)
    if cls is CachedMosaic:
        np.testing.assert_allclose(out['gt_bboxes'].tensor.numpy(), [[2, 2, 6, 6]])
        np.testing.assert_array_equal(out['gt_bboxes_labels'], [8])
    else:
        np.testing.assert_allclose(out['gt_bboxes'].tensor.numpy(), [[0, 0, 0, 0], [2, 2, 6, 6]])
        np.testing.assert_array_equal(out['gt_bboxes_labels'], [7, 8])


def test_cached_mixup_refuses_masks_it_cannot_mix():
    t = CachedMixUp(img_scale=(8, 8))
    t(sample(8, 8, [[0, 0, 2, 2]], [0], colour=1))  # fills the cache
    with pytest.raises(ValueError, match=r'CachedMixUp does not mix gt_masks.*img2\.png'):
        t(sample(8, 8, [[0, 0, 2, 2]], [1], colour=2))


def test_cached_and_dataset_modes_draw_prob_in_their_upstream_order():
    # mmdet's CachedMosaic caches every result, even those it will not mix ...
    cached = CachedMosaic(img_scale=(8, 8), prob=0.0)
    # ... mmyolo's Mosaic draws the probability first and caches only what it may mix
    mmyolo = Mosaic(img_scale=(8, 8), use_cached=True, prob=0.0)
    for i in range(3):
        cached(sample(8, 8, [[0, 0, 2, 2]], [i]))
        mmyolo(sample(8, 8, [[0, 0, 2, 2]], [i]))
    assert [int(r['gt_bboxes_labels'][0]) for r in cached.results_cache] == [0, 1, 2]
    assert mmyolo.results_cache == []


def test_cache_keeps_the_dataset_out_and_gives_it_back():
    marker = object()
    t = CachedMosaic(img_scale=(8, 8), center_ratio_range=(1.0, 1.0))
    for i in range(6):
        res = sample(8, 8, [[0, 0, 2, 2]], [i])
        res['dataset'] = marker
        out = t(res)
        assert out['dataset'] is marker
    assert out['img'].shape == (16, 16, 3)  # mixed
    assert all('dataset' not in r for r in t.results_cache)
    # no dataset in, none out
    assert 'dataset' not in t(sample(8, 8, [[0, 0, 2, 2]], [0]))


@pytest.mark.parametrize('cls, minimum', [(Mosaic, 4), (CachedMosaic, 4)])
def test_mix_transforms_share_argument_checks(cls, minimum):
    kwargs = dict(use_cached=True) if cls is Mosaic else {}
    with pytest.raises(ValueError, match=f'{cls.__name__}: max_cached_images must be >= 4'):
        cls(max_cached_images=minimum - 1, **kwargs)
    with pytest.raises(ValueError, match=f'{cls.__name__}: prob must be in'):
        cls(prob=-0.1, **kwargs)
    with pytest.raises(TypeError, match=f'{cls.__name__}: img_scale must be a tuple'):
        cls(img_scale=[8, 8], **kwargs)


def test_mosaic_dataset_mode_is_unchanged_by_the_shared_base(monkeypatch):
    """The non-cached (dataset) mode still fetches through pre_transform-less copies."""

    infos = [sample(16, 16, [[2, 2, 6, 8]], [i], colour=10 * i) for i in range(4)]
    res = copy.deepcopy(infos[0])
    res['dataset'] = ListOfInfos(infos)
    t = Mosaic(img_scale=(16, 16))
    monkeypatch.setattr(t, 'get_indexes', lambda dataset: [1, 2, 3])
    monkeypatch.setattr(t, '_get_center', lambda: (16, 16))
    out = t(res)
    expected = [[2, 2, 6, 8], [18, 2, 22, 8], [2, 18, 6, 24], [18, 18, 22, 24]]
    np.testing.assert_allclose(out['gt_bboxes'].tensor.numpy(), expected)
    np.testing.assert_allclose(out['gt_masks'].get_bboxes().tensor.numpy(), expected)
    assert 'mix_results' not in out and out['dataset'] is res['dataset']


# ------------------------------------------------------------------ class-text loader
@pytest.mark.parametrize('entry', [[''], ['  '], ['cat', ''], [1]])
def test_one_class_text_loader_refuses_empty_texts(tmp_path, entry):
    path = tmp_path / 'vocab.json'
    path.write_text(json.dumps([['person'], entry]))
    with pytest.raises(ValueError, match=r'vocab\.json: entry 1 must be a non-empty list'):
        load_class_texts(str(path))
    # the transforms read text_path with the same loader
    for transform in (LoadText, RandomLoadText):
        with pytest.raises(ValueError, match=r'vocab\.json: entry 1'):
            transform(text_path=str(path))


def test_transforms_read_text_path_with_the_dataset_loader(tmp_path):
    path = tmp_path / 'vocab.json'
    path.write_text(json.dumps([['person', 'human'], ['bicycle']]))
    assert LoadText(text_path=str(path)).class_texts == load_class_texts(str(path))
    assert RandomLoadText(text_path=str(path)).class_texts == [['person', 'human'], ['bicycle']]
