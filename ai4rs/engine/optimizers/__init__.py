from .amp_optimizer_wrapper import AmpOptimWrapper
from .default_constructor import DefaultOptimWrapperConstructor
from .paramwise_log import paramwise_summary

__all__ = ['AmpOptimWrapper', 'DefaultOptimWrapperConstructor', 'paramwise_summary']
from .yolov5_optim_constructor import (  # noqa: E402
    YOLOv5OptimizerConstructor,
    scale_weight_decay,
    yolov5_param_groups,
    yolov5_weight_decay_scale,
)
from .yolow_v5_optim_constructor import YOLOWv5OptimizerConstructor  # noqa: E402

__all__ += [
    'YOLOv5OptimizerConstructor',
    'YOLOWv5OptimizerConstructor',
    'yolov5_param_groups',
    'yolov5_weight_decay_scale',
    'scale_weight_decay',
]
