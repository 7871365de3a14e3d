"""A sample that yields None (a skipped bad image) is replaced by one drawn from its own seed,
so a resumed run repeats the uninterrupted one exactly, bad sample included; in test mode a
None is an error that names the sample."""

import json
import random

import cv2
import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope
from torch.utils.data import DataLoader

from ai4rs.datasets import CocoDataset, DOTADataset, MultiModalDataset, YOLOv5CocoDataset
from ai4rs.datasets.refetch import refetch_index
from ai4rs.datasets.samplers import DefaultSampler, SeededIndex

NUM_IMAGES, BAD = 8, 3  # image 3 of 8 cannot be decoded


def draw_randomness(results):
    """Records what the three global RNGs give for this sample."""
    results['draws'] = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    return results


PIPELINE = [dict(type='LoadImageFromFile'), draw_randomness]


@pytest.fixture(autouse=True)
def ai4rs_scope():
    with DefaultScope.overwrite_default_scope('ai4rs'):
        yield


@pytest.fixture
def root(tmp_path):
    (tmp_path / 'imgs').mkdir()
    images, anns = [], []
    for i in range(NUM_IMAGES):
        name = f'{i}.png'
        if i == BAD:
            (tmp_path / 'imgs' / name).write_bytes(b'\x89PNG\r\n\x1a\n truncated')
        else:
            cv2.imwrite(str(tmp_path / 'imgs' / name), np.full((6, 8, 3), i, np.uint8))
        images.append(dict(id=i + 1, file_name=name, width=8, height=6))
        anns.append(dict(id=i + 1, image_id=i + 1, category_id=1, bbox=[1, 1, 4, 3], area=12))
    (tmp_path / 'ann.json').write_text(
        json.dumps(dict(images=images, annotations=anns, categories=[dict(id=1, name='cat')]))
    )
    (tmp_path / 'texts.json').write_text(json.dumps([['cat']]))
    (tmp_path / 'annfiles').mkdir()  # the same images as a DOTA dataset
    for i in range(NUM_IMAGES):
        (tmp_path / 'annfiles' / f'{i}.txt').write_text('1 1 5 1 5 4 1 4 cat 0\n')
    return tmp_path


def make(kind, root, pipeline=PIPELINE, test_mode=False):
    if kind == 'dota':
        return DOTADataset(
            data_root=str(root),
            ann_file='annfiles/',
            data_prefix=dict(img_path='imgs/'),
            metainfo=dict(classes=('cat',)),
            skip_bad_images=True,
            test_mode=test_mode,
            pipeline=pipeline,
        )
    coco = dict(
        data_root=str(root),
        ann_file='ann.json',
        data_prefix=dict(img='imgs/'),
        metainfo=dict(classes=('cat',)),
        skip_bad_images=True,
        test_mode=test_mode,
    )
    if kind == 'multimodal':
        return MultiModalDataset(
            dataset=dict(type='CocoDataset', **coco),
            class_text_path=str(root / 'texts.json'),
            pipeline=pipeline,
        )
    cls = CocoDataset if kind == 'coco' else YOLOv5CocoDataset
    return cls(pipeline=pipeline, **coco)


def _reseed(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@pytest.mark.parametrize('kind', ['coco', 'yolov5', 'multimodal', 'dota'])
def test_replacement_of_a_bad_sample_depends_on_its_seed_only(root, kind):
    ds = make(kind, root)
    outs = []
    for global_seed in (0, 1, 2, 3):  # the worker's RNG state, whatever its history
        _reseed(global_seed)
        sample = ds[SeededIndex(BAD, 1234)]
        outs.append((sample['img_path'], sample['draws']))
    assert len(set(outs)) == 1
    assert not outs[0][0].endswith(f'/{BAD}.png')
    # the replacement is the sample refetch_index names, augmented under its seed
    again = refetch_index(SeededIndex(BAD, 1234), NUM_IMAGES)
    assert outs[0][0] == str(root / 'imgs' / f'{int(again)}.png')
    assert outs[0][1] == ds[again]['draws']
    # another seed, (most likely) another replacement; never a global RNG draw
    others = {refetch_index(SeededIndex(BAD, s), NUM_IMAGES) for s in range(20)}
    assert len(others) > 3 and all(0 <= int(i) < NUM_IMAGES for i in others)


def _epochs(ds, epochs):
    """(path, draws) of each sample in ``epochs``, one persistent worker (its RNG state runs
    on across epochs, as in a long run; a resumed run starts a fresh worker)."""
    _reseed(0)
    sampler = DefaultSampler(ds, shuffle=True, seed=7)
    loader = DataLoader(
        ds,
        batch_size=2,
        sampler=sampler,
        num_workers=1,
        persistent_workers=True,
        collate_fn=pseudo_collate,
    )
    out = {}
    for epoch in epochs:
        sampler.set_epoch(epoch)
        out[epoch] = [(p, d) for batch in loader for p, d in zip(batch['img_path'], batch['draws'])]
    return out


@pytest.mark.parametrize('kind', ['coco', 'multimodal', 'dota'])
def test_resume_after_a_bad_sample_is_exact(root, kind):
    ds = make(kind, root)
    straight = _epochs(ds, [0, 1, 2])
    resumed = _epochs(ds, [2])
    assert resumed[2] == straight[2]
    assert len(straight[2]) == NUM_IMAGES
    assert all(not p.endswith(f'/{BAD}.png') for p, _ in straight[2])


@pytest.mark.parametrize('kind', ['coco', 'multimodal', 'dota'])
def test_a_dropped_sample_in_test_mode_is_an_error_naming_it(root, kind):
    def drop_image_5(results):
        return None if results['img_path'].endswith('/5.png') else results

    ds = make(kind, root, pipeline=[drop_image_5], test_mode=True)
    assert ds[4]['img_path'].endswith('/4.png')
    with pytest.raises(RuntimeError) as err:
        ds[5]
    assert f'sample 5 ({root}/imgs/5.png)' in str(err.value)
    assert 'returned None in test mode' in str(err.value)
