"""QuadraticWarmup schedulers against hand-computed values."""

import pytest
import torch

from ai4rs.engine.schedulers import (
    QuadraticWarmupLR,
    QuadraticWarmupMomentum,
    QuadraticWarmupParamScheduler,
)
from ai4rs.registry import PARAM_SCHEDULERS


def _sgd(lr=0.01, momentum=0.9):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr, momentum=momentum)


def _run(scheduler, optimizer, key, steps):
    values = []
    for _ in range(steps):
        values.append(optimizer.param_groups[0][key])
        optimizer.step()
        scheduler.step()
    return values


def test_lr_warmup_values():
    optimizer = _sgd(lr=0.01)
    scheduler = QuadraticWarmupLR(optimizer, begin=0, end=5, by_epoch=False)
    values = _run(scheduler, optimizer, 'lr', 7)
    # base * (t + 1)^2 / T^2 with T = 5, then constant at the base value
    expected = [0.01 * 1 / 25, 0.01 * 4 / 25, 0.01 * 9 / 25, 0.01 * 16 / 25, 0.01, 0.01, 0.01]
    assert values == pytest.approx(expected, rel=1e-9)


def test_momentum_warmup_values():
    optimizer = _sgd(momentum=0.9)
    scheduler = QuadraticWarmupMomentum(optimizer, begin=0, end=3, by_epoch=False)
    values = _run(scheduler, optimizer, 'momentum', 4)
    assert values == pytest.approx([0.1, 0.4, 0.9, 0.9], rel=1e-9)


def test_epoch_to_iter_conversion():
    optimizer = _sgd(lr=0.36)
    scheduler = QuadraticWarmupLR.build_iter_from_epoch(
        optimizer, begin=0, end=2, by_epoch=True, epoch_length=3
    )
    assert not scheduler.by_epoch and (scheduler.begin, scheduler.end) == (0, 6)
    values = _run(scheduler, optimizer, 'lr', 7)
    assert values == pytest.approx([0.36 * (t + 1) ** 2 / 36 for t in range(6)] + [0.36])


def test_registry_and_errors():
    optimizer = _sgd()
    scheduler = PARAM_SCHEDULERS.build(
        dict(type='QuadraticWarmupLR', optimizer=optimizer, end=4, by_epoch=False)
    )
    assert isinstance(scheduler, QuadraticWarmupLR)
    with pytest.raises(ValueError, match='end'):
        QuadraticWarmupParamScheduler(_sgd(), 'lr')
    with pytest.raises(ValueError, match='epoch_length'):
        QuadraticWarmupLR.build_iter_from_epoch(_sgd(), end=2, epoch_length=None)
