"""YOLOv5 / YOLO-World optimizer constructors and YOLOv5ParamSchedulerHook.

Expected values are computed by hand (in comments) or by formulas written
out again here, independently of the code under test.
"""

import logging
import math
from types import SimpleNamespace

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from torch import nn

from ai4rs.engine.hooks import YOLOv5ParamSchedulerHook
from ai4rs.engine.optimizers import (
    YOLOv5OptimizerConstructor,
    YOLOWv5OptimizerConstructor,
    yolov5_weight_decay_scale,
)
from ai4rs.engine.optimizers import yolov5_optim_constructor as v5_module
from ai4rs.models.layers import ExpMomentumEMA
from ai4rs.registry import HOOKS, OPTIM_WRAPPER_CONSTRUCTORS


@pytest.fixture(autouse=True)
def ai4rs_scope():
    """Registry builds resolve in ai4rs whatever scope an earlier test left current."""
    with DefaultScope.overwrite_default_scope('ai4rs'):
        yield


# YOLO-World's fine-tuning recipe
RECIPE_CUSTOM_KEYS = {
    'backbone.text_model': dict(lr_mult=0.01),
    'logit_scale': dict(weight_decay=0.0),
}


class TextModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)


class Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.image_model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8))
        self.text_model = TextModel()


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.cls = nn.Conv2d(8, 4, 1)
        self.logit_scale = nn.Parameter(torch.tensor(2.0))


class ToyDetector(nn.Module):
    """Parameters, in the recursive order of the YOLO-World constructor:
    0 backbone.image_model.0.weight, 1 .1.weight (BN), 2 .1.bias (BN),
    3 backbone.text_model.proj.weight, 4 .proj.bias,
    5 bbox_head.logit_scale (a module's own parameter comes before its
    children's), 6 bbox_head.cls.weight, 7 bbox_head.cls.bias."""

    def __init__(self):
        super().__init__()
        self.backbone = Backbone()
        self.bbox_head = Head()


def _names(model, groups):
    names = {id(p): n for n, p in model.named_parameters()}
    return [[names[id(p)] for p in g['params']] for g in groups]


@pytest.fixture
def eight_gpus(monkeypatch):
    monkeypatch.setattr(v5_module, 'get_world_size', lambda: 8)


@pytest.mark.parametrize(
    'batch, world, factor',
    [
        (16, 8, 2.0),  # 128 images: accumulate max(round(0.5), 1) = 1 -> 128 / 64
        (16, 1, 1.0),  # 16: accumulate 4 -> 64 / 64
        (8, 2, 1.0),  # 16: accumulate 4
        (24, 1, 1.125),  # 24: accumulate round(2.67) = 3 -> 72 / 64
        (40, 1, 1.25),  # 40: accumulate round(1.6) = 2 -> 80 / 64
        (32, 4, 2.0),  # 128
        (64, 4, 4.0),  # 256
    ],
)
def test_weight_decay_scale(batch, world, factor):
    assert yolov5_weight_decay_scale(batch, world, 64) == pytest.approx(factor)


def test_weight_decay_scale_rejects_zero_batch():
    with pytest.raises(ValueError, match='batch_size_per_gpu'):
        yolov5_weight_decay_scale(0, 8, 64)


def test_yolow_constructor_recipe_groups(eight_gpus):
    model = ToyDetector()
    cfg = dict(
        type='OptimWrapper',
        clip_grad=dict(max_norm=10.0),
        optimizer=dict(type='AdamW', lr=2e-4, weight_decay=0.05, batch_size_per_gpu=16),
    )
    paramwise_cfg = dict(custom_keys=RECIPE_CUSTOM_KEYS)
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(type='YOLOWv5OptimizerConstructor', optim_wrapper_cfg=cfg, paramwise_cfg=paramwise_cfg)
    )
    wrapper = constructor(model)
    assert 'batch_size_per_gpu' in cfg['optimizer'], 'the caller config must not be modified'
    optimizer = wrapper.optimizer
    assert isinstance(optimizer, torch.optim.AdamW)
    groups = optimizer.param_groups
    assert _names(model, groups) == [
        ['backbone.image_model.0.weight'],
        ['backbone.image_model.1.weight'],
        ['backbone.image_model.1.bias'],
        ['backbone.text_model.proj.weight'],
        ['backbone.text_model.proj.bias'],
        ['bbox_head.logit_scale'],
        ['bbox_head.cls.weight'],
        ['bbox_head.cls.bias'],
    ]
    # default groups: lr 2e-4, weight decay 0.05 x (16 x 8 / 64 = 2) = 0.1
    for i in (0, 1, 2, 6, 7):
        assert groups[i]['lr'] == pytest.approx(2e-4)
        assert groups[i]['weight_decay'] == pytest.approx(0.1)
        assert 'lr_mult' not in groups[i]
    # text model: lr 2e-4 x 0.01; weight decay = base_wd x decay_mult(1) = 0.05, *unscaled*
    for i in (3, 4):
        assert groups[i]['lr'] == pytest.approx(2e-6)
        assert groups[i]['weight_decay'] == pytest.approx(0.05)
        assert groups[i]['lr_mult'] == 0.01
    # logit_scale: lr 2e-4, weight decay set to 0
    assert groups[5]['lr'] == pytest.approx(2e-4)
    assert groups[5]['weight_decay'] == 0.0
    assert optimizer.defaults['weight_decay'] == pytest.approx(0.1)
    assert wrapper.clip_grad_kwargs == dict(max_norm=10.0)


def test_yolow_constructor_frozen_text_model_keeps_its_groups(eight_gpus):
    model = ToyDetector()
    model.backbone.text_model.requires_grad_(False)
    cfg = dict(
        optimizer=dict(
            type='SGD',
            lr=1e-3,
            momentum=0.937,
            nesterov=True,
            weight_decay=5e-4,
            batch_size_per_gpu=16,
        )
    )
    constructor = YOLOWv5OptimizerConstructor(cfg, dict(custom_keys=RECIPE_CUSTOM_KEYS))
    groups = constructor(model).optimizer.param_groups
    # still one group per parameter (as upstream): group indices do not depend on freezing
    assert len(groups) == 8
    for i in (3, 4):  # no options of their own: the optimizer defaults
        assert groups[i]['lr'] == pytest.approx(1e-3)
        assert groups[i]['weight_decay'] == pytest.approx(1e-3)  # 5e-4 x 2
        assert 'lr_mult' not in groups[i]
        assert not groups[i]['params'][0].requires_grad
    assert groups[5]['weight_decay'] == 0.0
    assert groups[0]['momentum'] == 0.937 and groups[0]['nesterov']


def test_yolow_constructor_norm_bias_rules_override_custom_keys(eight_gpus):
    model = ToyDetector()
    paramwise_cfg = dict(
        custom_keys={'backbone.image_model': dict(lr_mult=0.5, decay_mult=3.0)},
        norm_decay_mult=0.0,
        bias_decay_mult=0.5,
        bias_lr_mult=2.0,
        base_total_batch_size=32,
    )
    cfg = dict(
        optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-2, batch_size_per_gpu=16)
    )
    groups = YOLOWv5OptimizerConstructor(cfg, paramwise_cfg)(model).optimizer.param_groups
    wd = [g['weight_decay'] for g in groups]
    lr = [g['lr'] for g in groups]
    # conv weight: custom key -> lr 0.1 x 0.5, wd 1e-2 x 3 (unscaled base)
    assert lr[0] == pytest.approx(0.05) and wd[0] == pytest.approx(0.03)
    # BN weight and bias: custom lr; norm_decay_mult 0 overrides the custom decay
    # (and bias_lr_mult does not apply to norm biases)
    assert lr[1] == pytest.approx(0.05) and wd[1] == 0.0
    assert lr[2] == pytest.approx(0.05) and wd[2] == 0.0
    # text linear: weight has no rule -> optimizer default (1e-2 x 128 / 32 = 0.04)
    assert lr[3] == pytest.approx(0.1) and wd[3] == pytest.approx(0.04)
    # biases outside norms: lr 0.1 x 2, wd 1e-2 x 0.5
    for i in (4, 7):
        assert lr[i] == pytest.approx(0.2) and wd[i] == pytest.approx(5e-3)
    assert lr[5] == pytest.approx(0.1) and wd[5] == pytest.approx(0.04)


def test_yolow_constructor_without_paramwise_options_is_one_group(eight_gpus):
    model = ToyDetector()
    cfg = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05, batch_size_per_gpu=16))
    constructor = YOLOWv5OptimizerConstructor(cfg, dict(base_total_batch_size=32))
    (group,) = constructor(model).optimizer.param_groups
    assert len(group['params']) == 8
    assert group['weight_decay'] == pytest.approx(0.2)  # 128 / 32 = 4


def test_yolov5_constructor_three_groups(eight_gpus):
    model = ToyDetector()
    cfg = dict(
        type='OptimWrapper',
        optimizer=dict(
            type='SGD',
            lr=0.01,
            momentum=0.937,
            weight_decay=5e-4,
            nesterov=True,
            batch_size_per_gpu=16,
        ),
    )
    groups = YOLOv5OptimizerConstructor(cfg)(model).optimizer.param_groups
    assert _names(model, groups) == [
        [
            'backbone.image_model.0.weight',
            'backbone.text_model.proj.weight',
            'bbox_head.cls.weight',
        ],
        ['backbone.image_model.1.weight'],
        ['backbone.image_model.1.bias', 'backbone.text_model.proj.bias', 'bbox_head.cls.bias'],
    ]
    assert groups[0]['weight_decay'] == pytest.approx(1e-3)  # 5e-4 x 2
    # norm weights and biases: SGD's default weight decay, 0
    assert groups[1]['weight_decay'] == 0 and groups[2]['weight_decay'] == 0
    assert all(g['lr'] == 0.01 and g['momentum'] == 0.937 for g in groups)


def test_yolov5_constructor_adamw_default_decay_and_no_scaling(monkeypatch):
    monkeypatch.setattr(v5_module, 'get_world_size', lambda: 1)
    model = ToyDetector()
    cfg = dict(
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=0.001, weight_decay=0.05, batch_size_per_gpu=16),
    )
    groups = YOLOv5OptimizerConstructor(cfg)(model).optimizer.param_groups
    assert groups[0]['weight_decay'] == pytest.approx(0.05)  # 16 x 1 against 64: x1
    # weight_decay is taken out of the optimizer config: AdamW's default 0.01 applies
    assert groups[1]['weight_decay'] == pytest.approx(0.01)
    assert groups[2]['weight_decay'] == pytest.approx(0.01)
    with pytest.raises(KeyError, match='base_total_batch_size'):
        YOLOv5OptimizerConstructor(cfg, dict(custom_keys={}))


# ---------------------------------------------------------------- scheduler hook


def linear_ref(epoch, lr_factor=0.01, max_epochs=10):
    return (1 - epoch / max_epochs) * (1 - lr_factor) + lr_factor


class FakeLoader:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


def _fake_runner(base_lrs, momentum=0.937, iters_per_epoch=5):
    params = [nn.Parameter(torch.zeros(1)) for _ in base_lrs]
    optimizer = torch.optim.SGD(
        [{'params': [p], 'lr': lr} for p, lr in zip(params, base_lrs)],
        lr=base_lrs[0],
        momentum=momentum,
    )
    return SimpleNamespace(
        optim_wrapper=SimpleNamespace(optimizer=optimizer),
        iter=0,
        epoch=0,
        train_dataloader=FakeLoader(iters_per_epoch),
    )


def test_scheduler_hook_warmup_and_epochs():
    # groups: weights 0.01, BN weights 0.01, biases 0.01 (index 2), text model 1e-4
    runner = _fake_runner([0.01, 0.01, 0.01, 1e-4])
    hook = HOOKS.build(
        dict(
            type='YOLOv5ParamSchedulerHook',
            scheduler_type='linear',
            lr_factor=0.01,
            max_epochs=10,
            warmup_epochs=2,
            warmup_mim_iter=3,
        )
    )
    assert hook.priority == 9
    hook.before_train(runner)
    groups = runner.optim_wrapper.optimizer.param_groups

    def at(it, epoch):
        runner.iter, runner.epoch = it, epoch
        hook.before_train_iter(runner, batch_idx=it % 5)
        return [g['lr'] for g in groups], [g['momentum'] for g in groups]

    # warm-up length: max(round(2 x 5), 3) = 10 iterations
    lrs, moms = at(0, 0)
    assert lrs == pytest.approx([0.0, 0.0, 0.1, 0.0])
    assert moms == pytest.approx([0.8] * 4)
    lrs, moms = at(4, 0)  # f(0) = 1, 4/10 of the way
    assert lrs == pytest.approx([0.004, 0.004, 0.1 + (0.01 - 0.1) * 0.4, 4e-5])
    assert lrs[2] == pytest.approx(0.064)
    assert moms == pytest.approx([0.8 + 0.137 * 0.4] * 4)
    hook.after_train_epoch(runner)  # still warming up: no change
    assert [g['lr'] for g in groups] == pytest.approx(lrs)
    lrs, moms = at(7, 1)  # f(1) = 0.9 x 0.99 + 0.01 = 0.901
    assert lrs == pytest.approx([0.006307, 0.006307, 0.1 + (0.00901 - 0.1) * 0.7, 6.307e-5])
    assert moms == pytest.approx([0.8959] * 4)
    lrs, moms = at(10, 2)  # end of warm-up: f(2) = 0.802
    assert lrs == pytest.approx([0.00802, 0.00802, 0.00802, 8.02e-5])
    assert moms == pytest.approx([0.937] * 4)
    lrs, moms = at(11, 2)  # after warm-up: unchanged until the epoch ends
    assert lrs == pytest.approx([0.00802, 0.00802, 0.00802, 8.02e-5])
    hook.after_train_epoch(runner)  # end of epoch 2 -> epoch 3 trains with f(2)
    assert [g['lr'] for g in groups] == pytest.approx([0.00802] * 3 + [8.02e-5])
    runner.epoch = 5  # mid-training: f(5) = 0.505
    hook.after_train_epoch(runner)
    assert [g['lr'] for g in groups] == pytest.approx([0.00505] * 3 + [5.05e-5])
    runner.epoch = 9  # last epoch: f(9) = 0.109
    hook.after_train_epoch(runner)
    assert [g['lr'] for g in groups] == pytest.approx([0.00109] * 3 + [1.09e-5])
    assert [g['momentum'] for g in groups] == pytest.approx([0.937] * 4)


def test_scheduler_hook_cosine_and_minimum_warmup():
    runner = _fake_runner([0.02, 0.02, 0.02], iters_per_epoch=5)
    hook = YOLOv5ParamSchedulerHook(
        scheduler_type='cosine',
        lr_factor=0.01,
        max_epochs=10,
        warmup_epochs=1,
        warmup_bias_lr=0.0,
        warmup_mim_iter=20,
    )
    hook.before_train(runner)
    groups = runner.optim_wrapper.optimizer.param_groups
    runner.iter, runner.epoch = 10, 2  # warm-up is max(5, 20) = 20 iterations: half-way
    hook.before_train_iter(runner, 0)
    f2 = (1 - math.cos(2 * math.pi / 10)) / 2 * (0.01 - 1) + 1  # 0.905463
    assert f2 == pytest.approx(0.905463, abs=1e-6)
    assert [g['lr'] for g in groups] == pytest.approx([0.02 * f2 * 0.5] * 3)
    runner.iter, runner.epoch = 21, 4
    hook.before_train_iter(runner, 0)
    runner.epoch = 5
    hook.after_train_epoch(runner)
    assert [g['lr'] for g in groups] == pytest.approx([0.02 * 0.505] * 3)  # cos(pi/2) = 0
    with pytest.raises(ValueError, match='scheduler_type'):
        YOLOv5ParamSchedulerHook(scheduler_type='step')


def test_scheduler_hook_keeps_recorded_initial_lr():
    """On resume the optimizer's state carries ``initial_lr``; it stays the base."""
    runner = _fake_runner([0.01, 0.01, 0.01])
    for group in runner.optim_wrapper.optimizer.param_groups:
        group['initial_lr'] = 0.04
        group['lr'] = 0.001
    hook = YOLOv5ParamSchedulerHook(max_epochs=10, warmup_epochs=1, warmup_mim_iter=1)
    hook.before_train(runner)
    runner.iter, runner.epoch = 100, 3
    hook.before_train_iter(runner, 0)
    hook.after_train_epoch(runner)
    lrs = [g['lr'] for g in runner.optim_wrapper.optimizer.param_groups]
    assert lrs == pytest.approx([0.04 * linear_ref(3)] * 3)


# ---------------------------------------------------------------- real Runner


class ToyNet(BaseModel):
    def __init__(self):
        super().__init__()
        self.backbone = Backbone()
        self.bbox_head = Head()

    def forward(self, inputs, labels=None, mode='tensor', **kwargs):
        feat = self.backbone.image_model(inputs).mean((2, 3))  # (B, 8)
        text = self.backbone.text_model.proj(torch.ones(1, 4))  # (1, 4)
        logits = self.bbox_head.cls(feat[:, :, None, None]).flatten(1) * text
        logits = logits * self.bbox_head.logit_scale
        if mode == 'loss':
            return dict(loss=nn.functional.cross_entropy(logits, labels))
        return logits


class TaggedSamples(torch.utils.data.Dataset):
    """Inner dataset: 8 images (3, 6, 6) with a label."""

    def __len__(self):
        return 8

    def __getitem__(self, idx):
        gen = torch.Generator().manual_seed(idx)
        return dict(inputs=torch.rand(3, 6, 6, generator=gen), labels=idx % 4)


class WrapperWithPipeline(torch.utils.data.Dataset):
    """Holds its pipeline on the wrapper, like YOLO-World's MultiModalDataset."""

    def __init__(self, pipeline):
        from mmcv.transforms import Compose

        self.dataset = TaggedSamples()
        self.pipeline = Compose(pipeline)

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, idx):
        return self.pipeline(dict(self.dataset[idx]))


def stage1(results):
    results['stage'] = 1
    return results


def stage2(results):
    results['stage'] = 2
    return results


class Recorder(Hook):
    priority = 'LOW'  # after the scheduler (9) and EMA (49) hooks

    def __init__(self):
        self.lrs, self.moms, self.stages, self.params = [], [], [], []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        groups = runner.optim_wrapper.optimizer.param_groups
        self.lrs.append([g['lr'] for g in groups])
        self.moms.append([g.get('momentum') for g in groups])
        self.stages.append(sorted(set(int(s) for s in data_batch['stage'])))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.params.append(
            {k: v.detach().clone().double() for k, v in runner.model.state_dict().items()}
        )


def _train(tmp_path, optim_wrapper, max_epochs=4):
    recorder = Recorder()
    runner = Runner(
        model=ToyNet(),
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=WrapperWithPipeline([stage1]),
            batch_size=2,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
        ),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=optim_wrapper,
        default_hooks=dict(
            checkpoint=None,
            logger=dict(type='LoggerHook', interval=100),
            param_scheduler=dict(
                type='YOLOv5ParamSchedulerHook',
                scheduler_type='linear',
                lr_factor=0.01,
                max_epochs=max_epochs,
                warmup_epochs=1,
                warmup_mim_iter=2,
            ),
        ),
        custom_hooks=[
            dict(
                type='EMAHook',
                ema_type='ExpMomentumEMA',
                momentum=0.0001,
                update_buffers=True,
                strict_load=False,
                priority=49,
            ),
            dict(type='PipelineSwitchHook', switch_epoch=max_epochs - 1, switch_pipeline=[stage2]),
            recorder,
        ],
        default_scope='ai4rs',
        log_level='WARNING',
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo')),
    )
    runner.train()
    return runner, recorder


def expected_lr(base, it, bias, lr_factor=0.01, max_epochs=4, iters=4):
    """YOLOv5 schedule written out: warm-up max(round(1 x 4), 2) = 4 iterations."""
    warmup = 4
    f = lambda e: (1 - e / max_epochs) * (1 - lr_factor) + lr_factor  # noqa: E731
    epoch = it // iters
    if it <= warmup:
        start = 0.1 if bias else 0.0
        return start + (base * f(epoch) - start) * it / warmup
    if epoch == warmup // iters:  # the epoch the warm-up ended in keeps its last value
        return base * f(warmup // iters)
    return base * f(epoch - 1)


def test_runner_sgd_yolov5_constructor(tmp_path):
    """A real mmengine Runner, 4 epochs x 4 iterations: SGD, YOLOv5 groups, EMA, pipeline switch."""
    optim_wrapper = dict(
        type='OptimWrapper',
        clip_grad=dict(max_norm=10.0),
        optimizer=dict(
            type='SGD',
            lr=0.01,
            momentum=0.937,
            weight_decay=5e-4,
            nesterov=True,
            batch_size_per_gpu=2,
        ),
        constructor='YOLOv5OptimizerConstructor',
        paramwise_cfg=dict(base_total_batch_size=1),
    )
    runner, rec = _train(tmp_path, optim_wrapper)
    groups = runner.optim_wrapper.optimizer.param_groups
    assert groups[0]['weight_decay'] == pytest.approx(1e-3)  # batch 2 against 1: x2
    assert len(rec.lrs) == 16
    for it, lrs in enumerate(rec.lrs):
        assert lrs == pytest.approx([expected_lr(0.01, it, bias=g == 2) for g in range(3)]), it
    for it, moms in enumerate(rec.moms):
        expected = 0.8 + (0.937 - 0.8) * min(it, 4) / 4
        assert moms == pytest.approx([expected] * 3), it
    # the train pipeline switches before epoch 3 (iterations 12..15), on the wrapper dataset
    assert rec.stages == [[1]] * 12 + [[2]] * 4

    # EMA as in YOLO-World's config: the first update copies, then
    # ema = (1 - m) ema + m p with m = (1 - 1e-4) exp(-(1 + k) / 2000) + 1e-4,
    # for floating parameters and buffers; integer buffers keep the first copy.
    ema_hook = next(h for h in runner.hooks if type(h).__name__ == 'EMAHook')
    assert isinstance(ema_hook.ema_model, ExpMomentumEMA)
    ema = dict(rec.params[0])
    for k, params in enumerate(rec.params[1:], start=1):
        m = (1 - 1e-4) * math.exp(-(1 + k) / 2000) + 1e-4
        ema = {
            n: (
                v
                if not v.is_floating_point() or 'num_batches' in n
                else (1 - m) * v + m * params[n]
            )
            for n, v in ema.items()
        }
    averaged = ema_hook.ema_model.module.state_dict()
    for name, value in ema.items():
        torch.testing.assert_close(averaged[name].double(), value, rtol=1e-5, atol=1e-6)
    assert averaged['backbone.image_model.1.num_batches_tracked'] == 1
    assert not torch.allclose(
        averaged['bbox_head.cls.weight'].double(), rec.params[-1]['bbox_head.cls.weight']
    )


def test_runner_adamw_yolow_constructor(tmp_path):
    """YOLO-World's AdamW recipe through the Runner: per-parameter groups, no momentum."""
    optim_wrapper = dict(
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=2e-4, weight_decay=0.05, batch_size_per_gpu=2),
        constructor='YOLOWv5OptimizerConstructor',
        paramwise_cfg=dict(custom_keys=RECIPE_CUSTOM_KEYS, base_total_batch_size=1),
    )
    runner, rec = _train(tmp_path, optim_wrapper, max_epochs=3)
    groups = runner.optim_wrapper.optimizer.param_groups
    assert [g['weight_decay'] for g in groups] == pytest.approx(
        [0.1, 0.1, 0.1, 0.05, 0.05, 0.0, 0.1, 0.1]
    )
    bases = [2e-4, 2e-4, 2e-4, 2e-6, 2e-6, 2e-4, 2e-4, 2e-4]
    for it, lrs in enumerate(rec.lrs):
        expected = [expected_lr(b, it, bias=g == 2, max_epochs=3) for g, b in enumerate(bases)]
        assert lrs == pytest.approx(expected), it
    assert all(m is None for moms in rec.moms for m in moms)  # AdamW: no momentum to warm up


def test_builds_from_mmengine_root_registry_in_scope():
    with DefaultScope.overwrite_default_scope('ai4rs'):
        from mmengine.registry import HOOKS as ROOT_HOOKS

        hook = ROOT_HOOKS.build(dict(type='YOLOv5ParamSchedulerHook', max_epochs=80))
    assert isinstance(hook, YOLOv5ParamSchedulerHook)
    assert hook.warmup_mim_iter == 1000 and hook.warmup_bias_lr == 0.1
    assert hook.warmup_momentum == 0.8 and hook.warmup_epochs == 3
    logging.getLogger(__name__).debug('built %s', hook)
