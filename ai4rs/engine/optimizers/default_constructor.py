"""mmengine's ``DefaultOptimWrapperConstructor`` with a one-line log of ``paramwise_cfg``."""

from mmengine.optim import DefaultOptimWrapperConstructor as _MMEngineDefaultConstructor
from mmengine.optim import OptimWrapper
from torch import nn

from ai4rs.registry import OPTIM_WRAPPER_CONSTRUCTORS

from .paramwise_log import paramwise_lines_summarized


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class DefaultOptimWrapperConstructor(_MMEngineDefaultConstructor):
    """mmengine's default constructor (same name, arguments and parameter groups): configs
    without ``constructor`` build this one in the ``ai4rs`` scope.

    The only difference is the log: mmengine writes one INFO line
    ``paramwise_options -- {name}:{key}={value}`` per option of every parameter (160
    lines for rotated YOLOX-s); here they go to DEBUG and one INFO line summarizes them
    (:mod:`ai4rs.engine.optimizers.paramwise_log`).
    """

    def __call__(self, model: nn.Module) -> OptimWrapper:
        with paramwise_lines_summarized():
            return super().__call__(model)
