"""YOLOX hooks (mode switch, pipeline switch, norm sync) and ExpMomentumEMA."""

import logging
import math
from types import SimpleNamespace

import pytest
import torch
from mmcv.transforms import Compose
from mmengine.hooks import EMAHook
from torch.utils.data import DataLoader

from ai4rs.engine.hooks import (
    SyncNormHook,
    YOLOXModeSwitchHook,
    get_norm_states,
    sync_norm_hook,
)
from ai4rs.models.layers import ExpMomentumEMA
from ai4rs.registry import HOOKS


class SkippableDataset(torch.utils.data.Dataset):
    def __init__(self):
        self.skip_type_keys = None
        self.pipeline = None

    def update_skip_type_keys(self, keys):
        self.skip_type_keys = tuple(keys)

    def __len__(self):
        return 4

    def __getitem__(self, idx):
        return idx


class PlainDataset(torch.utils.data.Dataset):
    pipeline = None

    def __len__(self):
        return 4

    def __getitem__(self, idx):
        return idx


def _runner(dataset, max_epochs=10, persistent=False, wrapped_detector=False):
    loader = DataLoader(dataset, num_workers=1 if persistent else 0, persistent_workers=persistent)
    model = torch.nn.Module()
    model.bbox_head = SimpleNamespace(use_l1=False)
    if wrapped_detector:  # e.g. a tracker holding a detector
        outer = torch.nn.Module()
        outer.detector = model
        model = outer
    return SimpleNamespace(
        epoch=0,
        max_epochs=max_epochs,
        train_dataloader=loader,
        model=model,
        logger=logging.getLogger('test_yolox_hooks'),
    )


def _head(runner):
    model = runner.model
    return (model.detector if hasattr(model, 'detector') else model).bbox_head


@pytest.mark.parametrize('wrapped', [False, True])
def test_mode_switch_hook_switches_at_the_right_epoch(wrapped):
    runner = _runner(SkippableDataset(), max_epochs=10, wrapped_detector=wrapped)
    hook = HOOKS.build(dict(type='YOLOXModeSwitchHook', num_last_epochs=3))
    switched_at = None
    for epoch in range(10):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        if switched_at is None and _head(runner).use_l1:
            switched_at = epoch
    # epochs are 0-based: the last 3 (1-based 8, 9, 10) minus one, as upstream: (e + 1) >= 7
    assert switched_at == 6
    assert runner.train_dataloader.dataset.skip_type_keys == ('Mosaic', 'RandomAffine', 'MixUp')


def test_mode_switch_hook_on_resume_and_without_skip_support():
    runner = _runner(PlainDataset(), max_epochs=300)
    hook = YOLOXModeSwitchHook(num_last_epochs=15)
    runner.epoch = 283
    hook.before_train_epoch(runner)
    assert not _head(runner).use_l1
    runner.epoch = 290  # resumed after the switch point: switches at once
    hook.before_train_epoch(runner)
    assert _head(runner).use_l1


def test_mode_switch_hook_restarts_persistent_workers():
    runner = _runner(SkippableDataset(), max_epochs=4, persistent=True)
    hook = YOLOXModeSwitchHook(num_last_epochs=2, skip_type_keys=('CachedMosaic',))
    loader = runner.train_dataloader
    runner.epoch = 1
    hook.before_train_epoch(runner)
    assert loader._DataLoader__initialized is False and loader._iterator is None
    assert loader.dataset.skip_type_keys == ('CachedMosaic',)
    runner.epoch = 2
    hook.before_train_epoch(runner)
    assert loader._DataLoader__initialized is True


def test_pipeline_switch_hook():
    runner = _runner(PlainDataset(), max_epochs=10)
    pipeline = [dict(type='RandomFlip', prob=1.0, direction='horizontal')]
    hook = HOOKS.build(dict(type='PipelineSwitchHook', switch_epoch=7, switch_pipeline=pipeline))
    switched_at = None
    for epoch in range(10):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        if switched_at is None and runner.train_dataloader.dataset.pipeline is not None:
            switched_at = epoch
    assert switched_at == 7
    new_pipeline = runner.train_dataloader.dataset.pipeline
    assert isinstance(new_pipeline, Compose)
    assert type(new_pipeline.transforms[0]).__name__ == 'RandomFlip'
    # built once, not rebuilt every epoch
    hook.before_train_epoch(runner)
    assert runner.train_dataloader.dataset.pipeline is new_pipeline


def _bn_model():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))
    model[1].running_mean.fill_(1.0)
    return model


def test_sync_norm_hook_single_process_is_noop(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError('must not communicate on one process')

    monkeypatch.setattr(sync_norm_hook.dist, 'all_reduce_dict', fail)
    model = _bn_model()
    SyncNormHook().before_val_epoch(SimpleNamespace(model=model))
    assert model[1].running_mean.tolist() == [1.0, 1.0]


def _sync_norm_worker(rank, world_size, port, results):
    import torch.distributed as torch_dist

    torch_dist.init_process_group(
        'gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=world_size
    )
    try:
        torch.manual_seed(0)
        model = _bn_model()
        with torch.no_grad():
            model[1].running_mean.fill_(1.0 + 2 * rank)  # ranks: 1 and 3 -> mean 2
            model[1].weight.fill_(float(rank))  # 0 and 1 -> 0.5
        model[1].num_batches_tracked.fill_(10 + rank)  # integers are not averaged
        conv_weight = model[0].weight.detach().clone()
        SyncNormHook().before_val_epoch(SimpleNamespace(model=model))
        results[rank] = dict(
            mean=model[1].running_mean.tolist(),
            weight=model[1].weight.detach().tolist(),
            tracked=int(model[1].num_batches_tracked),
            conv_same=bool(torch.equal(model[0].weight.detach(), conv_weight)),
        )
    finally:
        torch_dist.destroy_process_group()


def test_sync_norm_hook_averages_norm_states_over_two_processes():
    """Two real processes (gloo): every rank ends with the mean of the norm states."""
    import socket

    import torch.multiprocessing as mp

    model = _bn_model()
    assert set(get_norm_states(model)) == {
        '1.weight',
        '1.bias',
        '1.running_mean',
        '1.running_var',
        '1.num_batches_tracked',
    }
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_sync_norm_worker, args=(2, port, results), nprocs=2, join=True)
        results = dict(results)
    for rank in (0, 1):
        assert results[rank]['mean'] == [2.0, 2.0]
        assert results[rank]['weight'] == [0.5, 0.5]
        assert results[rank]['tracked'] == 10 + rank
        assert results[rank]['conv_same']


def test_exp_momentum_ema_values():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema = ExpMomentumEMA(model, momentum=0.1, gamma=4)
    ema.update_parameters(model)  # first update copies
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update_parameters(model)  # update number 1
    m = 0.9 * math.exp(-2 / 4) + 0.1
    assert ema.module.weight.item() == pytest.approx(1.0 + m * (3.0 - 1.0))
    assert ema.momentum_at(10**9) == pytest.approx(0.1)
    with pytest.raises(ValueError, match='gamma'):
        ExpMomentumEMA(model, gamma=0)


def test_ema_hook_builds_exp_momentum_ema():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    hook = EMAHook(ema_type='ai4rs.ExpMomentumEMA', momentum=1e-4, update_buffers=True)
    runner = SimpleNamespace(model=model, iter=0, epoch=0)
    hook.before_run(runner)
    assert isinstance(hook.ema_model, ExpMomentumEMA)
    assert hook.ema_model.update_buffers and hook.ema_model.momentum == 1e-4
    with torch.no_grad():
        model[0].weight.add_(1.0)
    hook.after_train_iter(runner, batch_idx=0)
    torch.testing.assert_close(hook.ema_model.module[0].weight, model[0].weight)
