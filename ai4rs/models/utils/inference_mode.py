"""The inference mode of a detector: Conv+BN folded, eval mode, optionally channels-last,
optionally a bfloat16 network.

mmcv's ``fuse_conv_bn`` folds any BatchNorm child that follows a Conv2d child in a module's
``children()`` order, which is only right when that BatchNorm normalises that conv's output.
:func:`fuse_conv_bn` here folds only pairs whose data flow is known: an mmcv ``ConvModule``
whose ``order`` runs the conv then the norm directly (``conv -> bn``). YOLO-World's contrast
heads (``BNContrastiveHead`` / ``RepBNContrastiveHead``) normalise the output of the class
branch's last conv before the region-text product: :func:`fold_contrast_norms` folds those
norms into that conv, for the head modules whose class branch is known to be
``cls_contrast(cls_pred(x))``. Every other BatchNorm is left as it is.

Folding (eval-mode BN, running statistics): for a conv ``y = W * x + b`` followed by
``BN(y) = gamma * (y - mean) / sqrt(var + eps) + beta``, the folded conv has

    W' = W * s[:, None, None, None],   b' = (b - mean) * s + beta,   s = gamma / sqrt(var + eps).

The models of ai4rs have no RepVGG-style multi-branch blocks (``RepConvMaxSigmoid*`` are
upstream's text-reparameterized VL-PAN blocks, already single-branch), so there is nothing
else to fold.

bfloat16 (:func:`to_bf16_network`): the network parts of a detector (the image backbone, the
neck, the head's convolutions: :func:`bf16_network_parts`) hold bfloat16 weights and get
bfloat16 inputs (forward pre-hooks cast the float32 image batch and text features); the
head's raw outputs are cast back to float32 (a forward hook), so decoding, priors, NMS and
rescaling run in float32, and predictions are float32. bfloat16 has an 8-bit significand:
1000.3 px would become 1000 (its spacing at 1000 is 4 px), which is why nothing after the
head's convolutions runs in it. Text models (CLIP) stay float32: their embeddings are
computed once per vocabulary and cached.
"""

import logging

import torch
from mmcv.cnn import ConvModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .inference_ops import chain_spp_pools, fuse_conv_act, swish_to_silu
from .memory_format import to_channels_last

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


def _fold_into_conv(conv: nn.Module, bn: _BatchNorm) -> None:
    """Make ``conv`` compute ``bn(conv(x))``, in place (:func:`fold_bn_into_conv_params`;
    a conv without a bias gets one)."""
    weight, bias = fold_bn_into_conv_params(conv.weight, conv.bias, bn)
    if conv.bias is None:
        conv.bias = nn.Parameter(bias.to(conv.weight.dtype))
    else:
        conv.bias.copy_(bias)
    conv.weight.copy_(weight)


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
        _fold_into_conv(module.conv, module.norm)
        delattr(module, module.norm_name)
        module.norm_name = None
        module.with_norm = False
        fused += 1
    return fused


def _contrast_heads(model: nn.Module):
    """(cls_pred's last conv, contrast head) of every level of every YOLO-World head module of
    ``model`` whose contrast head normalises that conv's output with a BatchNorm first: the
    head modules whose class-branch data flow is ``cls_contrast(cls_pred(x))`` (YOLO-World v2,
    rotated YOLO-World, the reparameterized one) and contrast heads ``BNContrastiveHead`` /
    ``RepBNContrastiveHead`` (``norm`` applied first to their input)."""
    from ai4rs.models.dense_heads.rep_yolo_world_head import (
        RepBNContrastiveHead,
        RepYOLOWorldHeadModule,
    )
    from ai4rs.models.dense_heads.rotated_yolo_world_head import RotatedYOLOWorldHeadModule
    from ai4rs.models.dense_heads.yolo_world_head import BNContrastiveHead, YOLOWorldHeadModule

    flows = (YOLOWorldHeadModule, RotatedYOLOWorldHeadModule, RepYOLOWorldHeadModule)
    for head in model.modules():
        if type(head) not in flows:
            continue
        for pred, contrast in zip(head.cls_preds, head.cls_contrasts, strict=True):
            if type(contrast) not in (BNContrastiveHead, RepBNContrastiveHead):
                continue
            bn = contrast.norm
            if not isinstance(bn, _BatchNorm) or bn.running_mean is None:
                continue
            last = pred[-1] if isinstance(pred, nn.Sequential) and len(pred) else None
            if type(last) is nn.Conv2d and last.out_channels == bn.num_features:
                yield last, contrast


@torch.no_grad()
def fold_contrast_norms(model: nn.Module) -> int:
    """Fold, in place, each YOLO-World contrast head's BatchNorm (``BNContrastiveHead.norm`` /
    ``RepBNContrastiveHead.norm``, eval statistics) into the conv that produces its input (the
    last conv of ``cls_preds[i]``), the norm replaced by ``nn.Identity``: ``norm(conv(x))``
    computed as one conv (:func:`fold_bn_into_conv_params`). Only heads whose data flow is
    known (:func:`_contrast_heads`). The state dict loses those norms' ``cls_contrasts.{i}.
    norm.*`` keys. Returns the number of folded norms."""
    folded = 0
    for conv, contrast in list(_contrast_heads(model)):
        _fold_into_conv(conv, contrast.norm)
        contrast.norm = nn.Identity()
        folded += 1
    return folded


def is_inference_mode(model: nn.Module) -> bool:
    """Whether :func:`to_inference_mode` has converted ``model``."""
    return bool(getattr(model, INFERENCE_MODE_ATTR, False))


def is_bf16(model: nn.Module) -> bool:
    """Whether :func:`to_inference_mode` made ``model``'s network bfloat16."""
    return bool((getattr(model, INFERENCE_MODE_ATTR, None) or {}).get('bf16', False))


def bf16_supported(device: str | torch.device = 'cpu') -> bool:
    """Whether ``device`` runs bfloat16 natively: on CPU, oneDNN's own check (AVX-512 BF16 /
    AMX, ``torch.ops.mkldnn._is_mkldnn_bf16_supported``); on CUDA,
    ``torch.cuda.is_bf16_supported()``."""
    device = torch.device(device)
    if device.type == 'cuda':
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != 'cpu' or not torch.backends.mkldnn.is_available():
        return False
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_bf16(bf16: bool | str | None, device: str | torch.device = 'cpu') -> bool:
    """Whether to run in bfloat16.

    Args:
        bf16 (bool | str | None): True / 'on': bfloat16, an error where ``device`` lacks native
            support; 'auto': bfloat16 where :func:`bf16_supported`, else float32 with a logged
            line; False / None / 'off': float32.
        device: the model's device.

    Raises:
        ValueError: another value, or bfloat16 forced on a device without native support.
    """
    if bf16 in (False, None, 'off'):
        return False
    if bf16 not in (True, 'on', 'auto'):
        raise ValueError(f"bf16 must be True, False, 'on', 'off' or 'auto', got {bf16!r}")
    supported = bf16_supported(device)
    if bf16 in (True, 'on'):
        if not supported:
            raise ValueError(
                f'bfloat16 inference asked for, but device {str(device)!r} has no native '
                'bfloat16 (on CPU: AVX-512 BF16 or AMX, torch.ops.mkldnn.'
                "_is_mkldnn_bf16_supported()); run in float32 or use bf16='auto'"
            )
        return True
    if not supported:
        logging.getLogger('ai4rs').warning(
            'bf16=auto: device %r has no native bfloat16; running in float32', str(device)
        )
    return supported


def resolve_channels_last(channels_last: bool | str, device: str | torch.device = 'cpu') -> bool:
    """Whether an inference model on ``device`` is made channels-last.

    Args:
        channels_last (bool | str): True / False as given; 'auto': on CPU, where it measured
            faster for every model and batch size (docs/model_zoo.md, "Inference against the
            machine's limit"), not elsewhere.

    Raises:
        ValueError: another value.
    """
    if channels_last == 'auto':
        return torch.device(device).type == 'cpu'
    if channels_last in (True, False):
        return bool(channels_last)
    raise ValueError(f"channels_last must be True, False or 'auto', got {channels_last!r}")


def _cast_floats(obj, dtype: torch.dtype, channels_last: bool = False):
    """``obj`` with every floating tensor in it (nested in tuples, lists, dicts) cast to
    ``dtype`` (4-D ones made channels-last with ``channels_last``); the rest unchanged."""
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() and obj.dtype != dtype:
            obj = obj.to(dtype)
        if channels_last and obj.dim() == 4:
            obj = obj.contiguous(memory_format=torch.channels_last)
        return obj
    if isinstance(obj, (tuple, list)):
        return type(obj)(_cast_floats(o, dtype, channels_last) for o in obj)
    if isinstance(obj, dict):
        return {k: _cast_floats(v, dtype, channels_last) for k, v in obj.items()}
    return obj


def _bf16_input_hook(module, args, kwargs):
    """A forward pre-hook: floating inputs in bfloat16 (4-D ones channels-last)."""
    return _cast_floats(args, torch.bfloat16, True), _cast_floats(kwargs, torch.bfloat16)


def _float32_output_hook(module, args, output):
    """A forward hook: floating outputs back in float32."""
    return _cast_floats(output, torch.float32)


def bf16_network_parts(model: nn.Module) -> tuple[list[nn.Module], nn.Module | None]:
    """The parts of a detector that run in bfloat16, and the one whose outputs are cast back.

    Returns:
        tuple[list[nn.Module], nn.Module | None]: the image backbone (``backbone.image_model``
        of a multi-modal backbone, else ``backbone``), the ``neck`` and the head's network
        (``bbox_head.head_module`` when the head has one, else ``bbox_head``), those present;
        and that head network (None without a head). A wrapper without these attributes but
        with a ``module`` (a test-time-augmentation model) gives its module's.

    Raises:
        ValueError: a model with neither a backbone, a neck, a head nor a wrapped ``module``.
    """
    inner = getattr(model, 'module', None)
    if not hasattr(model, 'backbone') and isinstance(inner, nn.Module):
        return bf16_network_parts(inner)
    parts = []
    backbone = getattr(model, 'backbone', None)
    if isinstance(backbone, nn.Module):
        image = getattr(backbone, 'image_model', None)
        parts.append(image if isinstance(image, nn.Module) else backbone)
    neck = getattr(model, 'neck', None)
    if isinstance(neck, nn.Module):
        parts.append(neck)
    head = getattr(model, 'bbox_head', None)
    if isinstance(head, nn.Module):
        module = getattr(head, 'head_module', None)
        head = module if isinstance(module, nn.Module) else head
        parts.append(head)
    if not parts:
        raise ValueError(
            f'bf16: {type(model).__name__} has no backbone, neck or bbox_head to convert'
        )
    return parts, head


def to_bf16_network(model: nn.Module) -> list[nn.Module]:
    """Make the network parts of ``model`` (:func:`bf16_network_parts`) bfloat16, in place:
    bfloat16 channels-last weights, inputs cast by a forward pre-hook on each part, the head
    network's outputs cast back to float32 by a forward hook (module docstring).

    Returns:
        list[nn.Module]: the converted parts.
    """
    parts, head = bf16_network_parts(model)
    for part in parts:
        part.to(torch.bfloat16)
        part.to(memory_format=torch.channels_last)
        part.register_forward_pre_hook(_bf16_input_hook, with_kwargs=True)
    if head is not None:
        head.register_forward_hook(_float32_output_hook)
    return parts


def to_inference_mode(
    model: nn.Module,
    fuse: bool = True,
    channels_last: bool = False,
    bf16: bool = False,
    fuse_act: bool = True,
) -> nn.Module:
    """Make ``model`` an inference model, in place: eval mode, Conv+BN
    fused (:func:`fuse_conv_bn`, and YOLO-World's contrast-head norms into the conv before them:
    :func:`fold_contrast_norms`), with ``fuse`` also the faster modules of the same function
    (:mod:`ai4rs.models.utils.inference_ops`: mmcv ``Swish`` -> ``nn.SiLU``, SPP pools
    chained, each conv + activation one oneDNN kernel on CPU), optionally channels-last. A
    second call does nothing.

    Channels-last (:func:`ai4rs.models.utils.memory_format.to_channels_last`) converts the
    4-D parameters and buffers and the image batch on its way into ``model.backbone`` (a
    forward pre-hook), so the data preprocessor and the results are untouched: outputs have
    the layout the convs give them, which no caller depends on (every consumer indexes or
    reshapes them).

    Args:
        model (nn.Module): a detector (or any module).
        fuse (bool): fold Conv+BN pairs.
        channels_last (bool): channels-last weights and backbone input.
        bf16 (bool): a bfloat16 network (:func:`to_bf16_network`; after fusion, so BatchNorm
            statistics are folded in float32); it is always channels-last (the faster layout
            for bfloat16 here, docs/model_zoo.md "bfloat16 inference"). Callers decide
            whether the device supports it (:func:`resolve_bf16`).
        fuse_act (bool): with ``fuse``, each conv + activation one oneDNN kernel on CPU
            (:func:`~ai4rs.models.utils.inference_ops.fuse_conv_act`); False keeps them two
            kernels (to measure the difference: ``benchmark.py --compare --modes ...
            inference_cl_two_kernels``).

    Returns:
        nn.Module: ``model``, with ``model._ai4rs_inference_mode`` = ``dict(fused=N,
        channels_last=bool, silu=N, chained_spp=N, conv_act=N, contrast_norms=N)`` (the counts
        of fused pairs, replaced ``Swish`` modules, chained SPP blocks, conv + activation pairs
        made one :class:`~ai4rs.models.utils.inference_ops.FusedConvAct` and YOLO-World contrast
        norms folded by :func:`fold_contrast_norms`), plus ``bf16=True`` for a bfloat16 network.
    """
    if is_inference_mode(model):
        return model
    model.eval()
    fused = fuse_conv_bn(model) if fuse else 0
    contrast_norms = fold_contrast_norms(model) if fuse else 0
    silu, chained = (swish_to_silu(model), chain_spp_pools(model)) if fuse else (0, 0)
    conv_act = fuse_conv_act(model) if fuse and fuse_act else 0
    if bf16:
        to_bf16_network(model)
        channels_last = True
    elif channels_last:
        to_channels_last(model)
    state = dict(
        fused=fused,
        channels_last=bool(channels_last),
        silu=silu,
        chained_spp=chained,
        conv_act=conv_act,
        contrast_norms=contrast_norms,
    )
    if bf16:
        state['bf16'] = True
    setattr(model, INFERENCE_MODE_ATTR, state)
    return model
