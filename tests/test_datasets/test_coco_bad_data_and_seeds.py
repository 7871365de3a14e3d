"""COCO datasets (CocoDataset, YOLOv5CocoDataset, MultiModalDataset) share the DOTA dataset's
reliability: an undecodable image is named (or skipped in training when asked), and the
pipeline runs under the per-sample seed of ai4rs' DefaultSampler."""

import json
import random

import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import DefaultScope

from ai4rs.datasets import CocoDataset, MultiModalDataset, YOLOv5CocoDataset
from ai4rs.datasets.file_checks import ImageDecodeError, skipped_image_count
from ai4rs.datasets.samplers import SeededIndex


def draw_randomness(results):
    """Records what the three global RNGs give for this sample."""
    results['draws'] = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    return results


@pytest.fixture(autouse=True)
def ai4rs_scope():
    with DefaultScope.overwrite_default_scope('ai4rs'):
        yield


@pytest.fixture
def root(tmp_path):
    """Two real 12x16 images a.png, b.png with one 'cat' box each."""
    (tmp_path / 'imgs').mkdir()
    rng = np.random.default_rng(0)
    images, anns = [], []
    for i, name in enumerate(['a.png', 'b.png']):
        cv2.imwrite(str(tmp_path / 'imgs' / name), rng.integers(0, 255, (12, 16, 3), np.uint8))
        images.append(dict(id=i + 1, file_name=name, width=16, height=12))
        anns.append(
            dict(id=i + 1, image_id=i + 1, category_id=3, bbox=[1, 1, 8, 6], area=48, iscrowd=0)
        )
    (tmp_path / 'ann.json').write_text(
        json.dumps(dict(images=images, annotations=anns, categories=[dict(id=3, name='cat')]))
    )
    (tmp_path / 'texts.json').write_text(json.dumps([['cat']]))
    return tmp_path


PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True)]


def coco(root, cls=CocoDataset, pipeline=PIPELINE, **kwargs):
    return cls(
        data_root=str(root),
        ann_file='ann.json',
        data_prefix=dict(img='imgs/'),
        metainfo=dict(classes=('cat',)),
        pipeline=pipeline,
        serialize_data=False,
        **kwargs,
    )


def multimodal(root, pipeline=PIPELINE, **kwargs):
    return MultiModalDataset(
        dataset=dict(
            type='CocoDataset',
            data_root=str(root),
            ann_file='ann.json',
            data_prefix=dict(img='imgs/'),
            metainfo=dict(classes=('cat',)),
            **kwargs,
        ),
        class_text_path=str(root / 'texts.json'),
        pipeline=pipeline,
    )


@pytest.mark.parametrize('cls', [CocoDataset, YOLOv5CocoDataset])
def test_undecodable_image_is_named_or_skipped(root, cls):
    bad = root / 'imgs' / 'b.png'
    bad.write_bytes(b'\x89PNG\r\n\x1a\n truncated')
    name = cls.__name__
    with pytest.raises(ImageDecodeError) as err:
        coco(root, cls)[1]
    assert f'{name}: could not decode image {bad}' in str(err.value)
    assert 'skip_bad_images=True' in str(err.value)
    before = skipped_image_count(name)
    sample = coco(root, cls, skip_bad_images=True)[1]  # training: another sample comes
    assert sample['img_path'] == str(root / 'imgs' / 'a.png')
    assert sample['img'].shape == (12, 16, 3)
    assert skipped_image_count(name) >= before + 1  # the redraw is random: b again counts too
    with pytest.raises(ImageDecodeError, match='could not decode'):  # test mode reads all
        coco(root, cls, skip_bad_images=True, test_mode=True)[1]


def test_multimodal_dataset_names_or_skips_bad_images(root):
    bad = root / 'imgs' / 'b.png'
    bad.write_bytes(b'')
    with pytest.raises(ImageDecodeError) as err:
        multimodal(root)[1]
    assert 'MultiModalDataset(CocoDataset)' in str(err.value) and str(bad) in str(err.value)
    before = skipped_image_count('MultiModalDataset(CocoDataset)')
    sample = multimodal(root, skip_bad_images=True)[1]
    assert sample['img_path'] == str(root / 'imgs' / 'a.png')
    assert sample['texts'] == [['cat']]
    assert skipped_image_count('MultiModalDataset(CocoDataset)') >= before + 1
    with pytest.raises(ImageDecodeError):  # the wrapped dataset in test mode
        multimodal(root, skip_bad_images=True, test_mode=True)[1]
    # every image bad: a clear error after max_refetch draws, not an endless loop
    (root / 'imgs' / 'a.png').write_bytes(b'')
    ds = multimodal(root, skip_bad_images=True)
    ds.max_refetch = 5
    with pytest.raises(RuntimeError, match='no valid sample after 5 draws'):
        ds[0]


@pytest.mark.parametrize('make', ['coco', 'yolov5', 'multimodal'])
def test_pipeline_runs_under_the_sample_seed(root, make):
    pipeline = PIPELINE + [draw_randomness]
    ds = dict(
        coco=lambda: coco(root, pipeline=pipeline),
        yolov5=lambda: coco(root, YOLOv5CocoDataset, pipeline=pipeline),
        multimodal=lambda: multimodal(root, pipeline=pipeline),
    )[make]()

    def draws(index, global_seed):
        random.seed(global_seed)
        np.random.seed(global_seed)
        torch.manual_seed(global_seed)
        out = ds[index]['draws']
        after = (random.random(), float(np.random.rand()), float(torch.rand(1)))
        random.seed(global_seed)
        np.random.seed(global_seed)
        torch.manual_seed(global_seed)
        # the caller's streams continue as if the sample had drawn nothing
        assert after == (random.random(), float(np.random.rand()), float(torch.rand(1)))
        return out

    seeded = draws(SeededIndex(1, 1234), 0)
    assert draws(SeededIndex(1, 1234), 99) == seeded  # independent of the global state
    assert draws(SeededIndex(1, 1235), 0) != seeded
    random.seed(1234)
    assert seeded[0] == random.random()  # seeded with the index's seed itself
    # a plain index is not seeded: the global state decides
    assert ds[1]['draws'] != ds[1]['draws']
