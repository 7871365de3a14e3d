"""The channels-last memory format for a detector: weights and the image batch.

Convolutions on CPU (oneDNN) and on recent GPUs run faster on NHWC tensors for some
networks; whether a model gains is measured (``tools/analysis_tools/profile_train_step.py
--compare-channels-last`` for training, ``benchmark.py`` for inference). Values are
untouched: only the strides change, so outputs equal the contiguous model's up to the
summation order of the kernels.
"""

import torch
from torch import nn

CHANNELS_LAST_ATTR = '_ai4rs_channels_last'


def channels_last_inputs(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """A forward pre-hook: 4-D tensor arguments made channels-last (the weights' layout)."""
    args = tuple(
        a.contiguous(memory_format=torch.channels_last)
        if isinstance(a, torch.Tensor) and a.dim() == 4
        else a
        for a in args
    )
    return args, kwargs


def is_channels_last(model: nn.Module) -> bool:
    """Whether :func:`to_channels_last` has converted ``model``."""
    return bool(getattr(model, CHANNELS_LAST_ATTR, False))


def to_channels_last(model: nn.Module) -> nn.Module:
    """Convert ``model`` in place: its 4-D parameters and buffers channels-last
    (``model.to(memory_format=torch.channels_last)``: parameters keep their identity, so an
    optimizer built before or after sees the same tensors) and the image batch made
    channels-last on its way into ``model.backbone`` (a forward pre-hook), so the data
    preprocessor and every consumer of the outputs are untouched. A second call does
    nothing.

    Args:
        model (nn.Module): a detector (an ``nn.Module`` with a ``backbone`` taking the
            (B, 3, H, W) images first); any module: only its weights are converted when it
            has no backbone.

    Returns:
        nn.Module: ``model``.
    """
    if is_channels_last(model):
        return model
    model.to(memory_format=torch.channels_last)
    backbone = getattr(model, 'backbone', None)
    if isinstance(backbone, nn.Module):
        backbone.register_forward_pre_hook(channels_last_inputs, with_kwargs=True)
    setattr(model, CHANNELS_LAST_ATTR, True)
    return model
