"""``paramwise_cfg`` is logged as one INFO summary (per-parameter lines at DEBUG).

The constructors must build the same parameter groups as before (mmengine's for
``DefaultOptimWrapperConstructor``); only the log changes.
"""

import logging
import uuid

import pytest
from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor as MMEngineConstructor
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from torch import nn

from ai4rs.engine.optimizers import (
    DefaultOptimWrapperConstructor,
    YOLOWv5OptimizerConstructor,
    paramwise_summary,
)
from ai4rs.utils import register_all_modules


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append((record.levelno, record.getMessage()))


@pytest.fixture
def log_records():
    # a new instance is the current one, where print_log(logger='current') logs
    logger = MMLogger.get_instance(f'test_paramwise_log_{uuid.uuid4().hex}', log_level='DEBUG')
    handler = _Records()
    logger.addHandler(handler)
    assert MMLogger.get_current_instance() is logger
    yield handler.records
    logger.removeHandler(handler)


def _tiny_model():
    m = nn.Module()
    m.conv = nn.Conv2d(3, 4, 3)
    m.bn = nn.BatchNorm2d(4)
    m.fc = nn.Linear(4, 2)
    return m


OPTIM = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01, weight_decay=5e-4))
PARAMWISE = dict(norm_decay_mult=0.0, bias_decay_mult=0.0)


def test_summary_of_lines():
    lines = ['a.bias:weight_decay=0.0', 'b.weight:lr=0.1', 'b.weight:weight_decay=0.0']
    assert paramwise_summary(lines) == (
        'paramwise_cfg: options set for 2 parameters: weight_decay=0.0 (2), lr=0.1 (1) '
        '(one line per parameter at log level DEBUG)'
    )
    assert paramwise_summary([]) is None


def test_default_constructor_one_summary_same_groups(log_records):
    register_all_modules(init_default_scope=False)
    model = _tiny_model()
    with DefaultScope.overwrite_default_scope('ai4rs'):
        # what the Runner does for a config without `constructor`
        wrapper = build_optim_wrapper(model, dict(OPTIM, paramwise_cfg=PARAMWISE))
    records = list(log_records)
    # mmengine's own constructor (which logs each line at INFO) for the expected groups
    expected = MMEngineConstructor(dict(OPTIM), dict(PARAMWISE))(_tiny_model())
    got = [(g['weight_decay'], tuple(p.shape for p in g['params'])) for g in wrapper.param_groups]
    want = [(g['weight_decay'], tuple(p.shape for p in g['params'])) for g in expected.param_groups]
    assert got == want
    # conv.bias, bn.weight, bn.bias, fc.bias get weight_decay 0: 4 options of 4 parameters
    info = [m for lv, m in records if lv == logging.INFO and 'paramwise' in m]
    debug = [m for lv, m in records if lv == logging.DEBUG and 'paramwise' in m]
    assert info == [
        'paramwise_cfg: options set for 4 parameters: weight_decay=0.0 (4) '
        '(one line per parameter at log level DEBUG)'
    ]
    assert sorted(debug) == sorted(
        f'paramwise_options -- {name}:weight_decay=0.0'
        for name in ('conv.bias', 'bn.weight', 'bn.bias', 'fc.bias')
    )
    assert isinstance(
        DefaultOptimWrapperConstructor(dict(OPTIM), dict(PARAMWISE)), MMEngineConstructor
    )


def test_yolow_constructor_one_summary(log_records):
    cfg = dict(
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=0.002, weight_decay=0.05, batch_size_per_gpu=16),
    )
    paramwise = dict(custom_keys={'fc': dict(lr_mult=0.1)}, norm_decay_mult=0.0)
    YOLOWv5OptimizerConstructor(cfg, paramwise)(_tiny_model())
    info = [m for lv, m in log_records if lv == logging.INFO and 'paramwise' in m]
    debug = [m for lv, m in log_records if lv == logging.DEBUG and 'paramwise' in m]
    # fc.weight / fc.bias: lr 0.1 x 0.002, decay 1 x 0.05, lr_mult copied; bn: decay 0
    assert len(info) == 1
    assert info[0].startswith('paramwise_cfg: options set for 4 parameters: ')
    assert 'weight_decay=0.0 (2)' in info[0] and 'lr_mult=0.1 (2)' in info[0]
    assert 'paramwise_options -- fc.bias:lr_mult=0.1' in debug
    assert 'paramwise_options -- bn.weight:weight_decay=0.0' in debug
    assert not any(m.startswith('paramwise_options') for lv, m in log_records if lv >= 20)
