"""Faster modules with the same outputs, for an inference model (no parameters change).

- :func:`swish_to_silu`: mmcv's ``Swish`` (``x * torch.sigmoid(x)``: two kernels and a
  temporary) replaced by ``nn.SiLU`` (one kernel), the same function.
- :func:`chain_spp_pools`: ``SPPBottleneck``'s parallel 5 / 9 / 13 max pools computed as a
  chain of 5x5 pools (exactly the same values).
- :func:`fuse_conv_act`: a ConvModule whose BatchNorm is folded (or that has none), i.e. a
  conv followed directly by its activation, replaced by :class:`FusedConvAct`: on CPU one
  oneDNN convolution with the activation as its post-op (``torch.ops.mkldnn.
  _convolution_pointwise``, the kernel PyTorch's own compiler uses for this pattern), so the
  conv's output is not written and read again by a separate activation kernel.

None touches parameters or buffers: the state dict is unchanged (a :class:`FusedConvAct`
keeps the ConvModule's ``conv`` child, so its keys stay ``<name>.conv.weight`` /
``<name>.conv.bias``).
"""

import torch
from mmcv.cnn import ConvModule
from mmcv.cnn.bricks.swish import Swish
from torch import nn

from ai4rs.models.layers.spp_bottleneck import SPPBottleneck


def swish_to_silu(model: nn.Module) -> int:
    """Replace every mmcv ``Swish`` submodule of ``model`` by ``nn.SiLU()``, in place;
    returns how many were replaced."""
    replaced = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is Swish:
                setattr(module, name, nn.SiLU())
                replaced += 1
    return replaced


def chain_spp_pools(model: nn.Module) -> int:
    """Make every ``SPPBottleneck`` of ``model`` whose kernel sizes allow it compute its pools
    as a chain (``SPPBottleneck.chain_pools``); returns how many do."""
    return sum(
        module.chain_pools() for module in model.modules() if isinstance(module, SPPBottleneck)
    )


def _onednn_post_op(act: nn.Module) -> tuple[str, list, str] | None:
    """oneDNN's name, scalars and algorithm for activation module ``act`` as a convolution
    post-op of ``torch.ops.mkldnn._convolution_pointwise``; None for one it has not."""
    kind = type(act)
    if kind is nn.SiLU:
        return 'swish', [], ''
    if kind is nn.ReLU:
        return 'relu', [], ''
    if kind is nn.LeakyReLU:
        return 'leaky_relu', [float(act.negative_slope)], ''
    if kind is nn.Sigmoid:
        return 'sigmoid', [], ''
    if kind is nn.Tanh:
        return 'tanh', [], ''
    if kind is nn.Hardswish:
        return 'hardswish', [], ''
    if kind is nn.GELU:
        return 'gelu', [], act.approximate
    return None


def _onednn_available() -> bool:
    mkldnn = torch.ops.mkldnn
    return torch.backends.mkldnn.is_available() and hasattr(mkldnn, '_convolution_pointwise')


class FusedConvAct(nn.Module):
    """``act(conv(x))`` for an inference model: on CPU one oneDNN convolution with ``act``
    as its post-op, elsewhere (another device, autograd wanted, tracing / ONNX export /
    ``torch.compile``, an empty batch, oneDNN turned off with ``torch.backends.mkldnn.flags``)
    ``conv`` then ``act`` as two modules.

    Built by :func:`fuse_conv_act` from a ConvModule without a (remaining) norm; it keeps the
    ConvModule's ``conv`` and ``activate`` children, so state dict keys are unchanged.

    Args:
        conv (nn.Conv2d): a conv with zero padding given as numbers.
        activate (nn.Module): an activation :func:`_onednn_post_op` knows.

    Shapes: input (N, C_in, H, W) float32 or bfloat16 (any memory format), output
    (N, C_out, H', W'), the format of the input.
    """

    def __init__(self, conv: nn.Conv2d, activate: nn.Module):
        super().__init__()
        post_op = _onednn_post_op(activate)
        if post_op is None:
            raise ValueError(f'FusedConvAct: no oneDNN post-op for {type(activate).__name__}')
        self.conv = conv
        self.activate = activate
        self.post_op = post_op

    def _fusable(self, x: torch.Tensor) -> bool:
        if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling():
            return False
        if torch.onnx.is_in_onnx_export():
            return False
        if not torch.backends.mkldnn.enabled:  # the user turned oneDNN off
            return False
        weight = self.conv.weight
        if x.device.type != 'cpu' or x.dim() != 4 or x.numel() == 0:
            return False
        if x.dtype not in (torch.float32, torch.bfloat16) or weight.dtype != x.dtype:
            return False
        if self.conv.bias is not None and self.conv.bias.dtype != x.dtype:
            return False
        # the fused op has no backward
        return not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._fusable(x):
            return self.activate(self.conv(x))
        conv = self.conv
        attr, scalars, algorithm = self.post_op
        return torch.ops.mkldnn._convolution_pointwise(
            x,
            conv.weight,
            conv.bias,
            list(conv.padding),
            list(conv.stride),
            list(conv.dilation),
            conv.groups,
            attr,
            scalars,
            algorithm,
        )


def _conv_then_act(module: nn.Module) -> bool:
    """Whether ``module`` is a ConvModule computing ``activate(conv(x))`` with a conv and an
    activation :class:`FusedConvAct` takes (no norm left, zero padding inside the conv)."""
    if not isinstance(module, ConvModule) or module.with_norm or not module.with_activation:
        return False
    if getattr(module, 'with_explicit_padding', False):
        return False
    if getattr(module, 'with_spectral_norm', False):
        return False
    order = tuple(module.order)
    if order.index('conv') > order.index('act'):
        return False
    conv = module.conv
    if type(conv) is not nn.Conv2d or conv.padding_mode != 'zeros':
        return False
    if isinstance(conv.padding, str):
        return False
    return _onednn_post_op(module.activate) is not None


def fuse_conv_act(model: nn.Module) -> int:
    """Replace, in place, every ConvModule of ``model`` that computes ``act(conv(x))``
    (its BatchNorm folded by ``fuse_conv_bn`` first, or none) by a :class:`FusedConvAct`;
    returns how many. Nothing is replaced where PyTorch has no oneDNN (the module then stays
    as it was). ``model`` itself is never replaced, only its descendants."""
    if not _onednn_available():
        return 0
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if _conv_then_act(child):
                setattr(parent, name, FusedConvAct(child.conv, child.activate))
                replaced += 1
    return replaced
