"""EMA with an exponentially decaying momentum (YOLOX), for mmengine's ``EMAHook``."""

import math

import torch
from mmengine.model import ExponentialMovingAverage
from torch import Tensor, nn

from ai4rs.registry import MODELS


@MODELS.register_module()
class ExpMomentumEMA(ExponentialMovingAverage):
    """Exponential moving average whose momentum decays from 1 to ``momentum``.

    At update number ``steps`` (0-based) the averaged value becomes
    ``(1 - m) * averaged + m * source`` with

        m = (1 - momentum) * exp(-(1 + steps) / gamma) + momentum,

    so the first updates nearly copy the model and later ones move by
    ``momentum``. Use it through ``dict(type='EMAHook', ema_type='ExpMomentumEMA', ...)``.

    Args:
        model (nn.Module): the model to average.
        momentum (float): the final momentum. Defaults to 0.0002.
        gamma (int): decay time constant, in updates. Must be > 0. Defaults to 2000.
        interval (int): update every ``interval`` training steps. Defaults to 1.
        device (torch.device, optional): where to keep the averaged copy.
        update_buffers (bool): also average buffers (BN statistics). Defaults to False.
    """

    def __init__(
        self,
        model: nn.Module,
        momentum: float = 0.0002,
        gamma: int = 2000,
        interval: int = 1,
        device: torch.device | None = None,
        update_buffers: bool = False,
    ) -> None:
        super().__init__(
            model=model,
            momentum=momentum,
            interval=interval,
            device=device,
            update_buffers=update_buffers,
        )
        if gamma <= 0:
            raise ValueError(f'gamma must be greater than 0, but got {gamma}')
        self.gamma = gamma

    def momentum_at(self, steps: int) -> float:
        """The momentum used for update number ``steps`` (0-based)."""
        return (1 - self.momentum) * math.exp(-float(1 + steps) / self.gamma) + self.momentum

    def avg_func(self, averaged_param: Tensor, source_param: Tensor, steps: int) -> None:
        averaged_param.lerp_(source_param, self.momentum_at(int(steps)))
