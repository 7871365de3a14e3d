"""Augmentation randomness is a function of (seed, epoch, position): a resumed run (fresh
workers at epoch 2) repeats the uninterrupted run's augmentations, with persistent workers."""

import random

import cv2
import numpy as np
import pytest
import torch
from mmengine.dataset import DefaultSampler as MMEngineDefaultSampler
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope
from torch.utils.data import DataLoader

from ai4rs.datasets import DOTADataset
from ai4rs.datasets.samplers import DefaultSampler


def draw_randomness(results):
    """A pipeline step that records what the three global RNGs give for this sample."""
    results['draws'] = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    return results


@pytest.fixture
def dataset(tmp_path):
    (tmp_path / 'annfiles').mkdir()
    (tmp_path / 'images').mkdir()
    for i in range(10):
        (tmp_path / 'annfiles' / f'P{i}.txt').write_text('0 0 4 0 4 4 0 4 ship 0\n')
        cv2.imwrite(str(tmp_path / 'images' / f'P{i}.png'), np.full((4, 4, 3), i, np.uint8))
    with DefaultScope.overwrite_default_scope('ai4rs'):
        yield DOTADataset(
            data_root=str(tmp_path),
            ann_file='annfiles/',
            data_prefix=dict(img_path='images/'),
            pipeline=[dict(type='LoadImageFromFile'), draw_randomness],
        )


def _epochs(dataset, sampler_cls, epochs, num_workers, persistent):
    sampler = sampler_cls(dataset, shuffle=True, seed=7)
    loader = DataLoader(
        dataset,
        batch_size=3,
        sampler=sampler,
        num_workers=num_workers,
        persistent_workers=persistent,
        collate_fn=pseudo_collate,
    )
    out = {}
    for epoch in epochs:
        sampler.set_epoch(epoch)
        out[epoch] = [
            (path, draws)
            for batch in loader
            for path, draws in zip(batch['img_path'], batch['draws'])
        ]
    return out


def test_resumed_epoch_repeats_the_uninterrupted_one(dataset):
    straight = _epochs(dataset, DefaultSampler, [0, 1, 2], num_workers=2, persistent=True)
    resumed = _epochs(dataset, DefaultSampler, [2], num_workers=2, persistent=True)
    assert resumed[2] == straight[2]
    # whatever the loader settings: one process, or non-persistent workers
    assert _epochs(dataset, DefaultSampler, [2], num_workers=0, persistent=False)[2] == straight[2]
    assert _epochs(dataset, DefaultSampler, [1, 2], 2, persistent=False)[2] == straight[2]
    # epochs and samples still differ from each other
    draws = [d for _, d in straight[1] + straight[2]]
    assert len(set(draws)) == len(draws) == 20
    # the failure being fixed: with plain indices, persistent workers carry their random
    # state across epochs and fresh workers at epoch 2 draw differently
    plain = _epochs(dataset, MMEngineDefaultSampler, [0, 1, 2], 2, persistent=True)
    plain_resumed = _epochs(dataset, MMEngineDefaultSampler, [2], 2, persistent=True)
    assert [p for p, _ in plain[2]] == [p for p, _ in plain_resumed[2]]
    assert plain[2] != plain_resumed[2]


def test_main_process_random_streams_are_not_disturbed(dataset):
    """With num_workers=0 the pipeline runs in the main process: its streams continue as if
    the samples had not been seeded (the DataLoader itself draws from torch's, as always)."""
    after = []
    for sampler_cls in (DefaultSampler, MMEngineDefaultSampler):
        random.seed(1)
        np.random.seed(1)
        torch.manual_seed(1)
        out = _epochs(dataset, sampler_cls, [0], num_workers=0, persistent=False)[0]
        after.append((random.random(), float(np.random.rand()), float(torch.rand(1))))
        if sampler_cls is MMEngineDefaultSampler:  # unseeded: the pipeline drew from the streams
            assert after[0] != after[1]
            break
    random.seed(1)
    np.random.seed(1)
    assert after[0][:2] == (random.random(), float(np.random.rand()))
    assert len(out) == 10


@pytest.mark.slow
def test_quickstart_resume_with_two_persistent_workers_equals_uninterrupted(tmp_path):
    """The reported case: the quick-start config (persistent workers), interrupted in epoch 2."""
    import os.path as osp
    import shutil
    import sys

    from ai4rs.datasets.preparation.synthetic_dota import generate_dataset
    from ai4rs.utils import load_checkpoint_safely
    from tests.conftest import REPO_ROOT, run_cmd

    config = osp.join(
        REPO_ROOT, 'configs', 'rotated_yolox', 'rotated_yolox_quickstart_synthetic.py'
    )
    train = osp.join(REPO_ROOT, 'tools', 'train.py')
    generate_dataset(str(tmp_path / 'data'), num_train=8, num_val=0, img_size=128)
    opts = [
        '--cfg-options',
        f'train_dataloader.dataset.data_root={tmp_path}/data/',
        'train_dataloader.batch_size=4',
        'train_dataloader.num_workers=2',
        'train_dataloader.persistent_workers=True',
        'train_cfg.val_interval=100',
        'val_dataloader=None',
        'val_cfg=None',
        'val_evaluator=None',
        'test_dataloader=None',
        'test_cfg=None',
        'test_evaluator=None',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.checkpoint.max_keep_ckpts=5',
    ]
    run_cmd(
        [sys.executable, train, config, '--work-dir', 'straight', *opts, 'train_cfg.max_epochs=3'],
        cwd=tmp_path,
    )
    # interrupted in epoch 2: only the epoch-1 checkpoint is left; resumed to epoch 3
    (tmp_path / 'resumed').mkdir()
    shutil.copy(tmp_path / 'straight' / 'epoch_1.pth', tmp_path / 'resumed' / 'epoch_1.pth')
    (tmp_path / 'resumed' / 'last_checkpoint').write_text(str(tmp_path / 'resumed' / 'epoch_1.pth'))
    run_cmd(
        [
            sys.executable,
            train,
            config,
            '--work-dir',
            'resumed',
            '--resume',
            *opts,
            'train_cfg.max_epochs=3',
        ],
        cwd=tmp_path,
    )
    straight = load_checkpoint_safely(str(tmp_path / 'straight' / 'epoch_3.pth'))['state_dict']
    resumed = load_checkpoint_safely(str(tmp_path / 'resumed' / 'epoch_3.pth'))['state_dict']
    for key, value in straight.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=1e-6, msg=key)
