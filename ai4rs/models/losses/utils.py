"""Loss reduction with element weights and an averaging factor (mmdet semantics)."""

import functools

import torch
from torch import Tensor

REDUCTIONS = ('none', 'mean', 'sum')


def check_reduction(reduction: str, owner: str = 'loss') -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f'{owner}: reduction must be one of {REDUCTIONS}, got {reduction!r}')
    return reduction


def reduce_loss(loss: Tensor, reduction: str) -> Tensor:
    """'none' -> unchanged, 'mean' -> mean, 'sum' -> sum."""
    check_reduction(reduction)
    if reduction == 'mean':
        return loss.mean()
    if reduction == 'sum':
        return loss.sum()
    return loss


def weight_reduce_loss(
    loss: Tensor,
    weight: Tensor | None = None,
    reduction: str = 'mean',
    avg_factor: float | None = None,
) -> Tensor:
    """Multiply by ``weight`` (broadcast), then reduce.

    With ``avg_factor`` and reduction 'mean' the result is
    ``loss.sum() / (avg_factor + eps)``; 'none' leaves the loss element-wise;
    'sum' with an ``avg_factor`` is an error (as in mmdet).
    """
    if weight is not None:
        loss = loss * weight
    if avg_factor is None:
        return reduce_loss(loss, reduction)
    if reduction == 'mean':
        eps = torch.finfo(torch.float32).eps
        return loss.sum() / (avg_factor + eps)
    if reduction != 'none':
        raise ValueError('avg_factor can not be used with reduction="sum"')
    return loss


def weighted_loss(loss_func):
    """Turn ``f(pred, target, **kw) -> element-wise loss`` into
    ``f(pred, target, weight=None, reduction='mean', avg_factor=None, **kw)``."""

    @functools.wraps(loss_func)
    def wrapper(
        pred: Tensor,
        target: Tensor,
        weight: Tensor | None = None,
        reduction: str = 'mean',
        avg_factor: float | None = None,
        **kwargs,
    ) -> Tensor:
        loss = loss_func(pred, target, **kwargs)
        return weight_reduce_loss(loss, weight, reduction, avg_factor)

    return wrapper
