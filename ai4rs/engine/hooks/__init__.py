from .checkpoint_fit_hook import CheckpointFitHook
from .pipeline_switch_hook import PipelineSwitchHook
from .progress_bar_hook import ProgressBarHook
from .sync_norm_hook import SyncNormHook, get_norm_states
from .visualization_hook import DetVisualizationHook
from .yolox_mode_switch_hook import YOLOXModeSwitchHook

__all__ = [
    'YOLOXModeSwitchHook',
    'SyncNormHook',
    'PipelineSwitchHook',
    'get_norm_states',
    'DetVisualizationHook',
]
from .yolov5_param_scheduler_hook import (  # noqa: E402
    YOLOv5ParamSchedulerHook,
    cosine_lr_factor,
    linear_lr_factor,
)

__all__ += ['YOLOv5ParamSchedulerHook', 'linear_lr_factor', 'cosine_lr_factor']
__all__ += ['CheckpointFitHook']
__all__ += ['ProgressBarHook']
