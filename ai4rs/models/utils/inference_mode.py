"""The inference mode of a detector: Conv+BN folded, eval mode, optionally channels-last.

mmcv's ``fuse_conv_bn`` folds any BatchNorm child that follows a Conv2d child in a module's
``children()`` order, which is only right when that BatchNorm normalises that conv's output.
:func:`fuse_conv_bn` here folds only pairs whose data flow is known: an mmcv ``ConvModule``
whose ``order`` runs the conv then the norm directly (``conv -> bn``). Every other BatchNorm
(e.g. YOLO-World's ``BNContrastiveHead.norm``, applied to region features before a matrix
product) is left as it is.

Folding (eval-mode BN, running statistics): for a conv ``y = W * x + b`` followed by
``BN(y) = gamma * (y - mean) / sqrt(var + eps) + beta``, the folded conv has

    W' = W * s[:, None, None, None],   b' = (b - mean) * s + beta,   s = gamma / sqrt(var + eps).

The models of ai4rs have no RepVGG-style multi-branch blocks (``RepConvMaxSigmoid*`` are
upstream's text-reparameterized VL-PAN blocks, already single-branch), so there is nothing
else to fold.
"""

import torch
from mmcv.cnn import ConvModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

#: attribute set on a model converted by :func:`to_inference_mode`
INFERENCE_MODE_ATTR = '_ai4rs_inference_mode'


def fold_bn_into_conv_params(
    weight: torch.Tensor, bias: torch.Tensor | None, bn: _BatchNorm
) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight and bias of a conv that computes ``bn(conv(x))`` (eval-mode ``bn``).

    Args:
        weight (Tensor): (C_out, C_in / groups, kH, kW) conv weight.
        bias (Tensor | None): (C_out,) conv bias, None for none.
        bn (_BatchNorm): over C_out channels, with running statistics.

    Returns:
        tuple[Tensor, Tensor]: (C_out, C_in / groups, kH, kW) weight and (C_out,) bias.
    """
    mean, var = bn.running_mean, bn.running_var
    gamma = bn.weight if bn.weight is not None else torch.ones_like(mean)
    beta = bn.bias if bn.bias is not None else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + bn.eps)
    if bias is None:
        bias = torch.zeros_like(mean)
    new_weight = weight * scale.reshape(-1, *([1] * (weight.dim() - 1)))
    new_bias = (bias - mean) * scale + beta
    return new_weight, new_bias


def _foldable(module: nn.Module) -> bool:
    """Whether ``module`` is a ConvModule that applies its BatchNorm right to its conv's output."""
    if not isinstance(module, ConvModule) or not module.with_norm:
        return False
    order = tuple(module.order)
    if 'conv' not in order or order.index('conv') + 1 >= len(order):
        return False
    if order[order.index('conv') + 1] != 'norm':
        return False
    bn, conv = module.norm, module.conv
    if not isinstance(bn, _BatchNorm) or bn.running_mean is None or bn.running_var is None:
        return False
    if getattr(module, 'with_spectral_norm', False):
        return False
    return type(conv) in (nn.Conv1d, nn.Conv2d, nn.Conv3d) and conv.out_channels == bn.num_features


@torch.no_grad()
def fuse_conv_bn(model: nn.Module) -> int:
    """Fold, in place, each ConvModule's BatchNorm into its conv (see the module docstring).

    The fused ConvModule's conv gets a bias, its norm layer is removed (``with_norm`` False,
    ``norm_name`` None), so the state dict has ``conv.bias`` and no ``bn.*`` keys for it.
    Only valid for inference: the BatchNorm's running statistics are baked in.

    Args:
        model (nn.Module): any module; its submodules are searched.

    Returns:
        int: the number of fused (conv, BatchNorm) pairs.
    """
    fused = 0
    for module in list(model.modules()):
        if not _foldable(module):
            continue
        conv, bn = module.conv, module.norm
        weight, bias = fold_bn_into_conv_params(conv.weight, conv.bias, bn)
        if conv.bias is None:
            conv.bias = nn.Parameter(bias.to(conv.weight.dtype))
        else:
            conv.bias.copy_(bias)
        conv.weight.copy_(weight)
        delattr(module, module.norm_name)
        module.norm_name = None
        module.with_norm = False
        fused += 1
    return fused


def is_inference_mode(model: nn.Module) -> bool:
    """Whether :func:`to_inference_mode` has converted ``model``."""
    return bool(getattr(model, INFERENCE_MODE_ATTR, False))


def _channels_last_input_hook(module, args, kwargs):
    """A forward pre-hook: 4-D tensor inputs made channels-last (the layout of the weights)."""
    args = tuple(
        a.contiguous(memory_format=torch.channels_last)
        if isinstance(a, torch.Tensor) and a.dim() == 4
        else a
        for a in args
    )
    return args, kwargs


def to_inference_mode(
    model: nn.Module, fuse: bool = True, channels_last: bool = False
) -> nn.Module:
    """Make ``model`` an inference model, in place: eval mode, Conv+BN
    fused (:func:`fuse_conv_bn`), optionally channels-last. A second call does nothing.

    Channels-last converts the 4-D parameters and buffers (``model.to(memory_format=...)``)
    and the image batch on its way into ``model.backbone`` (a forward pre-hook), so the data
    preprocessor and the results are untouched: outputs have the layout the convs give them,
    which no caller depends on (every consumer indexes or reshapes them).

    Args:
        model (nn.Module): a detector (or any module).
        fuse (bool): fold Conv+BN pairs.
        channels_last (bool): channels-last weights and backbone input.

    Returns:
        nn.Module: ``model``, with ``model._ai4rs_inference_mode`` = ``dict(fused=N,
        channels_last=bool)``.
    """
    if is_inference_mode(model):
        return model
    model.eval()
    fused = fuse_conv_bn(model) if fuse else 0
    if channels_last:
        model.to(memory_format=torch.channels_last)
        backbone = getattr(model, 'backbone', None)
        if isinstance(backbone, nn.Module):
            backbone.register_forward_pre_hook(_channels_last_input_hook, with_kwargs=True)
    setattr(model, INFERENCE_MODE_ATTR, dict(fused=fused, channels_last=bool(channels_last)))
    return model
