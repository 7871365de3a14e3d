"""YOLOv5's optimizer constructor: three parameter groups and batch-scaled weight decay."""

from mmengine.dist import get_world_size
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper
from torch import nn

from ai4rs.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS


def yolov5_weight_decay_scale(
    batch_size_per_gpu: int, world_size: int, base_total_batch_size: int = 64
) -> float:
    """The factor YOLOv5 multiplies the weight decay by.

    The total batch ``T = world_size * batch_size_per_gpu`` is thought of as
    accumulated ``A = max(round(base_total_batch_size / T), 1)`` times
    (Python's ``round``, half to even), and the factor is ``T * A /
    base_total_batch_size``. So a total batch below the base keeps the decay
    (up to rounding, e.g. 24 -> A = 3 -> 72 / 64 = 1.125) and a larger one
    scales it linearly (16 per GPU x 8 GPUs = 128 -> 2.0).

    Args:
        batch_size_per_gpu (int): images per GPU (per process).
        world_size (int): number of processes.
        base_total_batch_size (int): the total batch the decay is given for.

    Returns:
        float: the scale factor.
    """
    if batch_size_per_gpu <= 0 or world_size <= 0 or base_total_batch_size <= 0:
        raise ValueError(
            'batch_size_per_gpu, world_size and base_total_batch_size must be positive, got '
            f'{batch_size_per_gpu}, {world_size} and {base_total_batch_size}'
        )
    total_batch_size = world_size * batch_size_per_gpu
    accumulate = max(round(base_total_batch_size / total_batch_size), 1)
    return total_batch_size * accumulate / base_total_batch_size


def scale_weight_decay(optimizer_cfg: dict, base_total_batch_size: int) -> dict:
    """Pop ``batch_size_per_gpu`` from ``optimizer_cfg`` (a copy is returned)
    and scale its ``weight_decay`` (0 if absent) by
    :func:`yolov5_weight_decay_scale` with the current world size.

    Without ``batch_size_per_gpu`` the config is returned unchanged.
    """
    optimizer_cfg = dict(optimizer_cfg)
    if 'batch_size_per_gpu' not in optimizer_cfg:
        return optimizer_cfg
    batch_size_per_gpu = optimizer_cfg.pop('batch_size_per_gpu')
    factor = yolov5_weight_decay_scale(batch_size_per_gpu, get_world_size(), base_total_batch_size)
    if factor != 1:
        optimizer_cfg['weight_decay'] = optimizer_cfg.get('weight_decay', 0) * factor
        print_log(f'Scaled weight_decay to {optimizer_cfg["weight_decay"]}', 'current')
    return optimizer_cfg


def yolov5_param_groups(model: nn.Module) -> tuple[list, list, list]:
    """Split the parameters of ``model`` the YOLOv5 way.

    Walks ``model.modules()`` (each module once) and returns
    ``(weights, norm_weights, biases)``:

    - ``biases``: every module's ``bias`` that is an ``nn.Parameter``
      (conv, linear and norm biases alike);
    - ``norm_weights``: the ``weight`` of batch/instance norm layers
      (``nn.modules.batchnorm._NormBase``, SyncBatchNorm included);
    - ``weights``: the ``weight`` of every other module.

    Parameters with other names (e.g. ``logit_scale``) are in no group, so a
    YOLOv5-constructed optimizer does not update them (as upstream).
    """
    weights, norm_weights, biases = [], [], []
    for module in model.modules():
        if isinstance(getattr(module, 'bias', None), nn.Parameter):
            biases.append(module.bias)
        weight = getattr(module, 'weight', None)
        if not isinstance(weight, nn.Parameter):
            continue
        if isinstance(module, nn.modules.batchnorm._NormBase):
            norm_weights.append(weight)
        else:
            weights.append(weight)
    return weights, norm_weights, biases


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class YOLOv5OptimizerConstructor:
    """YOLOv5's optimizer wrapper constructor (mmyolo).

    The optimizer gets three parameter groups, in this order (the
    :class:`YOLOv5ParamSchedulerHook` treats group 2 as the bias group):

    0. weights of conv/linear/other layers, with ``weight_decay`` (scaled,
       see below);
    1. weights of batch-norm layers, with the optimizer's *default* weight
       decay (0 for SGD, 0.01 for AdamW: ``weight_decay`` is taken out of the
       optimizer config);
    2. all biases, likewise.

    If ``optimizer`` has ``batch_size_per_gpu``, it is removed and
    ``weight_decay`` is multiplied by :func:`yolov5_weight_decay_scale`
    ``(batch_size_per_gpu, world_size, base_total_batch_size)``.

    Args:
        optim_wrapper_cfg (dict): the optimizer wrapper config, with an
            ``optimizer`` dict (``type``, ``lr``, ``weight_decay``,
            ``batch_size_per_gpu``, ...). ``type`` defaults to
            ``'OptimWrapper'``.
        paramwise_cfg (dict, optional): must hold ``base_total_batch_size``.
            Defaults to ``dict(base_total_batch_size=64)``.

    Example:
        >>> optim_wrapper = dict(type='OptimWrapper', optimizer=dict(
        ...     type='SGD', lr=0.01, momentum=0.937, weight_decay=5e-4,
        ...     nesterov=True, batch_size_per_gpu=16),
        ...     constructor='YOLOv5OptimizerConstructor')
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None) -> None:
        if paramwise_cfg is None:
            paramwise_cfg = {'base_total_batch_size': 64}
        if 'base_total_batch_size' not in paramwise_cfg:
            raise KeyError(
                'YOLOv5OptimizerConstructor: paramwise_cfg must contain '
                f'"base_total_batch_size", got {dict(paramwise_cfg)}'
            )
        if not isinstance(optim_wrapper_cfg, dict):
            raise TypeError(
                f'optim_wrapper_cfg should be a dict, but got {type(optim_wrapper_cfg)}'
            )
        if 'optimizer' not in optim_wrapper_cfg:
            raise KeyError('optim_wrapper_cfg must contain an "optimizer" config')
        self.optim_wrapper_cfg = dict(optim_wrapper_cfg)
        self.optimizer_cfg = self.optim_wrapper_cfg.pop('optimizer')
        self.base_total_batch_size = paramwise_cfg['base_total_batch_size']

    def __call__(self, model: nn.Module) -> OptimWrapper:
        if is_model_wrapper(model):
            model = model.module
        optimizer_cfg = scale_weight_decay(self.optimizer_cfg, self.base_total_batch_size)
        weight_decay = optimizer_cfg.pop('weight_decay', 0)
        weights, norm_weights, biases = yolov5_param_groups(model)
        optimizer_cfg['params'] = [
            {'params': weights, 'weight_decay': weight_decay},
            {'params': norm_weights},
            {'params': biases},  # must stay the last (index 2) group
        ]
        optimizer = OPTIMIZERS.build(optimizer_cfg)
        optim_wrapper_cfg = dict(self.optim_wrapper_cfg)
        optim_wrapper_cfg.setdefault('type', 'OptimWrapper')
        return OPTIM_WRAPPERS.build(optim_wrapper_cfg, default_args=dict(optimizer=optimizer))
