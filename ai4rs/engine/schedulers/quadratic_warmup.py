"""Quadratic warm-up of a parameter (YOLOX's learning-rate warm-up)."""

from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.momentum_scheduler import MomentumSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler

from ai4rs.registry import PARAM_SCHEDULERS


@PARAM_SCHEDULERS.register_module()
class QuadraticWarmupParamScheduler(_ParamScheduler):
    """Warm a parameter up quadratically over ``T = end - begin`` steps.

    After step ``t`` (0-based, counted from ``begin``) the value is
    ``base * (t + 1)**2 / T**2``, reached by adding ``base * (2t + 1) / T**2``
    at each step; it equals ``base`` at ``t = T - 1``.

    Args:
        optimizer: wrapped optimizer.
        param_name (str): e.g. 'lr' or 'momentum'.
        begin (int): first step. Defaults to 0.
        end (int): step after the last; must be finite.
        last_step (int): Defaults to -1.
        by_epoch (bool): steps are epochs. Defaults to True; with
            ``convert_to_iter_based=True`` in a config, epochs become iterations.
        verbose (bool): print each update.
    """

    def __init__(
        self,
        optimizer,
        param_name: str,
        begin: int = 0,
        end: int = INF,
        last_step: int = -1,
        by_epoch: bool = True,
        verbose: bool = False,
    ) -> None:
        if end >= INF:
            raise ValueError(
                '``end`` must be less than infinity, Please set ``end`` parameter '
                'of ``QuadraticWarmupScheduler`` as the number of warmup end.'
            )
        self.total_iters = end - begin
        super().__init__(
            optimizer=optimizer,
            param_name=param_name,
            begin=begin,
            end=end,
            last_step=last_step,
            by_epoch=by_epoch,
            verbose=verbose,
        )

    @classmethod
    def build_iter_from_epoch(
        cls,
        *args,
        begin: int = 0,
        end: int = INF,
        by_epoch: bool = True,
        epoch_length: int | None = None,
        **kwargs,
    ):
        """Build an iteration-based scheduler from epoch-based ``begin`` / ``end``."""
        if not by_epoch:
            raise ValueError(
                'Only epoch-based kwargs whose `by_epoch=True` can be converted to iter-based.'
            )
        if epoch_length is None or epoch_length <= 0:
            raise ValueError(f'`epoch_length` must be a positive integer, got {epoch_length}.')
        begin = begin * epoch_length
        if end != INF:
            end = end * epoch_length
        return cls(*args, begin=begin, end=end, by_epoch=False, **kwargs)

    def _get_value(self) -> list:
        step = self.last_step
        denom = self.total_iters**2
        if step == 0:
            return [base * (2 * step + 1) / denom for base in self.base_values]
        return [
            group[self.param_name] + base * (2 * step + 1) / denom
            for base, group in zip(self.base_values, self.optimizer.param_groups)
        ]


@PARAM_SCHEDULERS.register_module()
class QuadraticWarmupLR(LRSchedulerMixin, QuadraticWarmupParamScheduler):
    """Quadratic warm-up of the learning rate (see :class:`QuadraticWarmupParamScheduler`)."""


@PARAM_SCHEDULERS.register_module()
class QuadraticWarmupMomentum(MomentumSchedulerMixin, QuadraticWarmupParamScheduler):
    """Quadratic warm-up of the momentum (see :class:`QuadraticWarmupParamScheduler`)."""
