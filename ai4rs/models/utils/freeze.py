"""Freezing parts of a model: the one place that says what "frozen" means.

Two upstream meanings, kept apart on purpose:

- a frozen backbone stage (mmdet / mmyolo ``_freeze_stages``): the whole module in eval
  mode (BatchNorm statistics and dropout fixed) and no gradients;
- ``freeze_all`` of a YOLO neck or head (mmyolo / YOLO-World ``_freeze_all``): only the
  BatchNorms in eval mode, no gradients; other layers keep the caller's mode.

Both must be applied again after every ``train()`` call, which puts the modules back in
training mode.
"""

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def freeze_module(module: nn.Module) -> nn.Module:
    """Put ``module`` (all its submodules) in eval mode and stop its parameters' gradients.

    Returns:
        nn.Module: ``module``.
    """
    module.eval()
    for param in module.parameters():
        param.requires_grad = False
    return module


def freeze_norms_and_params(module: nn.Module) -> nn.Module:
    """Put every BatchNorm of ``module`` in eval mode and stop all its parameters' gradients
    (the ``freeze_all`` of mmyolo's necks and YOLO-World's head); other submodules keep
    their mode.

    Returns:
        nn.Module: ``module``.
    """
    set_norm_eval(module)
    for param in module.parameters():
        param.requires_grad = False
    return module


def set_norm_eval(module: nn.Module) -> nn.Module:
    """Put every BatchNorm of ``module`` in eval mode (``norm_eval``); gradients untouched.

    Returns:
        nn.Module: ``module``.
    """
    for m in module.modules():
        if isinstance(m, _BatchNorm):
            m.eval()
    return module
