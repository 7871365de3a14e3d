"""CrossEntropyLoss, L1Loss and RotatedIoULoss against hand-computed values."""

import math

import pytest
import torch

from ai4rs.models.losses import CrossEntropyLoss, L1Loss, RotatedIoULoss, weight_reduce_loss
from ai4rs.registry import MODELS


def test_sigmoid_cross_entropy_soft_targets():
    loss = CrossEntropyLoss(use_sigmoid=True, reduction='sum', loss_weight=2.0)
    pred = torch.tensor([[0.0, 2.0]])
    target = torch.tensor([[0.5, 0.0]])  # soft (IoU-aware) target
    # BCE(x, y) = log(1 + e^x) - x * y
    expected = (math.log(2) - 0) + (math.log(1 + math.e**2) - 0)
    assert loss(pred, target).item() == pytest.approx(2 * expected, rel=1e-6)
    mean = CrossEntropyLoss(use_sigmoid=True)
    assert mean(pred, target, avg_factor=4).item() == pytest.approx(expected / 4, rel=1e-6)
    assert mean(pred, target, reduction_override='none').shape == (1, 2)
    # index labels are expanded to one-hot
    assert mean(pred, torch.tensor([1]), reduction_override='sum').item() == pytest.approx(
        math.log(2) + math.log(1 + math.e**2) - 2, rel=1e-6
    )


def test_softmax_cross_entropy():
    loss = MODELS.build(dict(type='CrossEntropyLoss', use_sigmoid=False))
    assert loss(torch.zeros(2, 4), torch.tensor([1, 3])).item() == pytest.approx(math.log(4))
    weight = torch.tensor([1.0, 0.0])
    assert loss(
        torch.tensor([[0.0, 1.0], [5.0, 0.0]]),
        torch.tensor([1, 1]),
        weight=weight,
        reduction_override='sum',
    ).item() == pytest.approx(math.log(1 + math.e**-1))


def test_l1_loss():
    loss = L1Loss(reduction='sum', loss_weight=0.5)
    pred = torch.tensor([[1.0, -2.0], [0.0, 0.0]], requires_grad=True)
    target = torch.zeros(2, 2)
    assert loss(pred, target).item() == pytest.approx(1.5)
    assert loss(pred, target, reduction_override='mean').item() == pytest.approx(0.375)
    assert loss(pred, target, reduction_override='mean', avg_factor=1).item() == pytest.approx(
        1.5, rel=1e-6
    )
    empty = loss(pred[:0], target[:0])
    assert empty.item() == 0 and empty.requires_grad


def test_weight_reduce_loss_rules():
    loss = torch.tensor([1.0, 2.0, 3.0])
    assert weight_reduce_loss(loss, torch.tensor([1.0, 0.0, 1.0]), 'sum').item() == 4
    with pytest.raises(ValueError, match='avg_factor'):
        weight_reduce_loss(loss, reduction='sum', avg_factor=2)
    with pytest.raises(ValueError, match='reduction'):
        L1Loss(reduction='max')


@pytest.mark.parametrize('mode,expected', [('linear', 0.5), ('square', 0.75), ('log', math.log(2))])
def test_rotated_iou_loss_modes(mode, expected):
    pred = torch.tensor([[0.0, 0.0, 4.0, 2.0, 0.3]], requires_grad=True)
    target = torch.tensor([[0.0, 0.0, 2.0, 2.0, 0.3]])  # inside pred, IoU = 4 / 8
    loss = RotatedIoULoss(mode=mode, reduction='mean', loss_weight=1.0)
    value = loss(pred, target)
    assert value.item() == pytest.approx(expected, abs=1e-5)
    value.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_rotated_iou_loss_fp32_under_autocast():
    pred = torch.tensor([[10.0, 10.0, 40.0, 20.0, 0.2], [10.0, 10.0, 6.0, 6.0, 0.0]])
    target = torch.tensor([[12.0, 10.0, 40.0, 20.0, -0.1], [100.0, 100.0, 6.0, 6.0, 0.0]])
    loss = RotatedIoULoss(mode='square', eps=1e-16, reduction='sum', loss_weight=5.0)
    reference = loss(pred, target)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = loss(pred.bfloat16(), target.bfloat16())
    assert value.dtype == torch.float32 and torch.isfinite(value)
    # the only difference is bf16 rounding of the inputs
    assert value.item() == pytest.approx(reference.item(), rel=2e-2)
    # the disjoint pair contributes 5 * (1 - 0) = 5
    assert reference.item() > 5.0


def test_rotated_iou_loss_weights_and_errors():
    loss = RotatedIoULoss(mode='linear')
    pred = torch.tensor([[0.0, 0.0, 4.0, 2.0, 0.0]], requires_grad=True)
    target = torch.tensor([[0.0, 0.0, 2.0, 2.0, 0.0]])
    zero = loss(pred, target, weight=torch.zeros(1))
    assert zero.item() == 0 and zero.requires_grad
    assert loss(pred, target, weight=torch.full((1, 5), 2.0)).item() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match='mode'):
        RotatedIoULoss(mode='giou')
    with pytest.warns(UserWarning, match='deprecated'):
        assert RotatedIoULoss(linear=True).mode == 'linear'
