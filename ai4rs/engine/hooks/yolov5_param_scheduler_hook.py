"""YOLOv5's learning-rate / momentum schedule: per-iteration warm-up, then per-epoch decay."""

import math
from collections.abc import Callable

from mmengine.hooks import ParamSchedulerHook

from ai4rs.registry import HOOKS


def linear_lr_factor(epoch: float, lr_factor: float, max_epochs: int) -> float:
    """``(1 - epoch / max_epochs) * (1 - lr_factor) + lr_factor``: 1 at epoch
    0, ``lr_factor`` at ``max_epochs``."""
    return (1 - epoch / max_epochs) * (1.0 - lr_factor) + lr_factor


def cosine_lr_factor(epoch: float, lr_factor: float, max_epochs: int) -> float:
    """``(1 - cos(pi * epoch / max_epochs)) / 2 * (lr_factor - 1) + 1``: 1 at
    epoch 0, ``lr_factor`` at ``max_epochs``."""
    return (1 - math.cos(epoch * math.pi / max_epochs)) / 2 * (lr_factor - 1) + 1


def warmup_interp(cur_iter: int, warmup_iters: int, start: float, end: float) -> float:
    """Linear from ``start`` at iteration 0 to ``end`` at ``warmup_iters``
    (``end`` from there on, and for ``warmup_iters <= 0``)."""
    if warmup_iters <= 0 or cur_iter >= warmup_iters:
        return float(end)
    return float(start + (end - start) * max(cur_iter, 0) / warmup_iters)


@HOOKS.register_module()
class YOLOv5ParamSchedulerHook(ParamSchedulerHook):
    """YOLOv5's learning rate and momentum schedule (mmyolo), for
    optimizers built by :class:`YOLOv5OptimizerConstructor` or
    :class:`YOLOWv5OptimizerConstructor`.

    With ``base_lr[g]`` / ``base_momentum[g]`` the group's ``initial_lr`` /
    ``initial_momentum`` (recorded before training, kept on resume), ``f``
    the schedule (``linear`` or ``cosine`` from 1 at epoch 0 to ``lr_factor``
    at ``max_epochs``) and ``W = max(round(warmup_epochs * iters_per_epoch),
    warmup_mim_iter)``:

    - warm-up, before every iteration ``i <= W`` (0-based global iteration,
      ``e`` the current 0-based epoch): ``lr[g]`` goes linearly from 0 (from
      ``warmup_bias_lr`` for group index 2, the bias group of
      :class:`YOLOv5OptimizerConstructor`) at ``i = 0`` to
      ``base_lr[g] * f(e)`` at ``i = W``; groups that have a ``momentum``
      (SGD; not AdamW) go from ``warmup_momentum`` to ``base_momentum[g]``.
    - afterwards, after every epoch ``e`` that ends once the warm-up is over:
      ``lr[g] = base_lr[g] * f(e)`` (so epoch ``e + 1`` trains with
      ``f(e)``), momentum unchanged.

    Group index 2 is special whatever it holds (as upstream): with the
    per-parameter groups of :class:`YOLOWv5OptimizerConstructor` it is the
    model's third parameter.

    Args:
        scheduler_type (str): ``'linear'`` or ``'cosine'``. Defaults to 'linear'.
        lr_factor (float): final lr as a fraction of the base lr. Defaults to 0.01.
        max_epochs (int): epochs of the schedule. Defaults to 300.
        warmup_epochs (int | float): warm-up length in epochs. Defaults to 3.
        warmup_bias_lr (float): group 2's lr at iteration 0. Defaults to 0.1.
        warmup_momentum (float): momentum at iteration 0. Defaults to 0.8.
        warmup_mim_iter (int): minimum warm-up iterations (upstream's
            spelling). Defaults to 1000.
    """

    priority = 9

    scheduler_maps: dict[str, Callable[[float, float, int], float]] = {
        'linear': linear_lr_factor,
        'cosine': cosine_lr_factor,
    }

    def __init__(
        self,
        scheduler_type: str = 'linear',
        lr_factor: float = 0.01,
        max_epochs: int = 300,
        warmup_epochs: int | float = 3,
        warmup_bias_lr: float = 0.1,
        warmup_momentum: float = 0.8,
        warmup_mim_iter: int = 1000,
    ) -> None:
        if scheduler_type not in self.scheduler_maps:
            raise ValueError(
                f'scheduler_type must be one of {sorted(self.scheduler_maps)}, '
                f'got {scheduler_type!r}'
            )
        if max_epochs <= 0:
            raise ValueError(f'max_epochs must be positive, got {max_epochs}')
        self.scheduler_type = scheduler_type
        self.lr_factor = lr_factor
        self.max_epochs = max_epochs
        self.warmup_epochs = warmup_epochs
        self.warmup_bias_lr = warmup_bias_lr
        self.warmup_momentum = warmup_momentum
        self.warmup_mim_iter = warmup_mim_iter
        self._warmup_end = False
        self._base_lr: list[float] | None = None
        self._base_momentum: list[float] | None = None

    def scheduler_fn(self, epoch: float) -> float:
        """The lr factor ``f(epoch)``."""
        return self.scheduler_maps[self.scheduler_type](epoch, self.lr_factor, self.max_epochs)

    def warmup_iters(self, iters_per_epoch: int) -> int:
        """``max(round(warmup_epochs * iters_per_epoch), warmup_mim_iter)``."""
        return max(round(self.warmup_epochs * iters_per_epoch), self.warmup_mim_iter)

    def before_train(self, runner) -> None:
        optimizer = runner.optim_wrapper.optimizer
        for group in optimizer.param_groups:
            group.setdefault('initial_lr', group['lr'])
            group.setdefault('initial_momentum', group.get('momentum', -1))
        self._base_lr = [group['initial_lr'] for group in optimizer.param_groups]
        self._base_momentum = [group['initial_momentum'] for group in optimizer.param_groups]

    def before_train_iter(self, runner, batch_idx: int, data_batch: dict | None = None) -> None:
        warmup_iters = self.warmup_iters(len(runner.train_dataloader))
        cur_iter = runner.iter
        if cur_iter > warmup_iters:
            self._warmup_end = True
            return
        factor = self.scheduler_fn(runner.epoch)
        for idx, group in enumerate(runner.optim_wrapper.optimizer.param_groups):
            start_lr = self.warmup_bias_lr if idx == 2 else 0.0
            group['lr'] = warmup_interp(
                cur_iter, warmup_iters, start_lr, self._base_lr[idx] * factor
            )
            if 'momentum' in group:
                group['momentum'] = warmup_interp(
                    cur_iter, warmup_iters, self.warmup_momentum, self._base_momentum[idx]
                )

    def after_train_epoch(self, runner) -> None:
        if not self._warmup_end:
            return
        factor = self.scheduler_fn(runner.epoch)
        for idx, group in enumerate(runner.optim_wrapper.optimizer.param_groups):
            group['lr'] = self._base_lr[idx] * factor
