"""CSPDarknet backbone (YOLOv5 / YOLOX) with a Focus stem."""

from collections.abc import Sequence

import torch
from mmcv.cnn import ConvModule, DepthwiseSeparableConvModule
from torch import Tensor, nn

from ai4rs.registry import MODELS

from ..layers import CSPLayer, SPPBottleneck
from ..layers.csp_layer import DEFAULT_ACT_CFG, DEFAULT_NORM_CFG
from ..layers.init_cfg import YOLOX_CONV_INIT
from .base_backbone import StagedBackbone

__all__ = ['CSPDarknet', 'Focus']


class Focus(nn.Module):
    """Space-to-depth then a conv: (B, C, H, W) -> (B, out_channels, H/2, W/2).

    The four pixel phases are stacked in the order top-left, bottom-left,
    top-right, bottom-right (upstream's order, which checkpoints depend on),
    giving 4 * C channels, then ``conv`` (a ConvModule) is applied.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        conv_cfg=None,
        norm_cfg=DEFAULT_NORM_CFG,
        act_cfg=DEFAULT_ACT_CFG,
    ) -> None:
        super().__init__()
        self.conv = ConvModule(
            in_channels * 4,
            out_channels,
            kernel_size,
            stride,
            padding=(kernel_size - 1) // 2,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
        )

    def forward(self, x: Tensor) -> Tensor:
        top_left = x[..., ::2, ::2]
        top_right = x[..., ::2, 1::2]
        bot_left = x[..., 1::2, ::2]
        bot_right = x[..., 1::2, 1::2]
        return self.conv(torch.cat((top_left, bot_left, top_right, bot_right), dim=1))


@MODELS.register_module()
class CSPDarknet(StagedBackbone):
    """CSPDarknet: Focus stem then stages of (stride-2 conv, [SPP], CSPLayer).

    Each row of an arch setting is ``[in_channels, out_channels, num_blocks,
    add_identity, use_spp]`` before scaling; channels are multiplied by
    ``widen_factor`` (and truncated) and ``num_blocks`` becomes
    ``max(round(num_blocks * deepen_factor), 1)``. Layer names are ``stem``,
    ``stage1`` ... ``stageN``; output index 0 is the stem. Freezing, ``norm_eval`` and the
    forward pass: :class:`StagedBackbone`.

    Args:
        arch (str): 'P5' (4 stages, output stride 32) or 'P6' (5 stages).
        deepen_factor (float): depth multiplier. Defaults to 1.0.
        widen_factor (float): width multiplier. Defaults to 1.0.
        out_indices (Sequence[int]): which layers to return. Defaults to (2, 3, 4).
        frozen_stages (int): freeze the stem and the first ``frozen_stages``
            stages (-1: nothing, 0: the stem only). Defaults to -1.
        use_depthwise (bool): depthwise separable convs. Defaults to False.
        arch_ovewrite (list, optional): replaces the arch setting (upstream's spelling).
        spp_kernal_sizes (Sequence[int]): SPP pool sizes (upstream's spelling).
        conv_cfg, norm_cfg, act_cfg (dict): ConvModule configs; BN(momentum=0.03,
            eps=0.001) and Swish by default.
        norm_eval (bool): keep BN layers in eval mode while training.
        init_cfg (dict): Kaiming-uniform on Conv2d by default.

    Shapes: (B, 3, H, W) -> tuple of (B, C_i, H / s_i, W / s_i) with
    s = 2, 4, 8, 16, 32 (, 64) for indices 0, 1, 2, 3, 4 (, 5).
    """

    arch_settings = {
        'P5': [
            [64, 128, 3, True, False],
            [128, 256, 9, True, False],
            [256, 512, 9, True, False],
            [512, 1024, 3, False, True],
        ],
        'P6': [
            [64, 128, 3, True, False],
            [128, 256, 9, True, False],
            [256, 512, 9, True, False],
            [512, 768, 3, True, False],
            [768, 1024, 3, False, True],
        ],
    }

    def __init__(
        self,
        arch: str = 'P5',
        deepen_factor: float = 1.0,
        widen_factor: float = 1.0,
        out_indices: Sequence[int] = (2, 3, 4),
        frozen_stages: int = -1,
        use_depthwise: bool = False,
        arch_ovewrite: list | None = None,
        spp_kernal_sizes: Sequence[int] = (5, 9, 13),
        conv_cfg=None,
        norm_cfg=DEFAULT_NORM_CFG,
        act_cfg=DEFAULT_ACT_CFG,
        norm_eval: bool = False,
        init_cfg=YOLOX_CONV_INIT,
    ) -> None:
        arch_setting = self.select_arch(arch)
        if arch_ovewrite:
            arch_setting = arch_ovewrite
        super().__init__(len(arch_setting) + 1, out_indices, frozen_stages, norm_eval, init_cfg)
        self.use_depthwise = use_depthwise
        common = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        conv = DepthwiseSeparableConvModule if use_depthwise else ConvModule

        self.stem = Focus(3, int(arch_setting[0][0] * widen_factor), kernel_size=3, **common)
        self.layers.append('stem')
        for i, (in_ch, out_ch, num_blocks, add_identity, use_spp) in enumerate(arch_setting):
            in_ch = int(in_ch * widen_factor)
            out_ch = int(out_ch * widen_factor)
            num_blocks = max(round(num_blocks * deepen_factor), 1)
            stage = [conv(in_ch, out_ch, 3, stride=2, padding=1, **common)]
            if use_spp:
                stage.append(SPPBottleneck(out_ch, out_ch, kernel_sizes=spp_kernal_sizes, **common))
            stage.append(
                CSPLayer(
                    out_ch,
                    out_ch,
                    num_blocks=num_blocks,
                    add_identity=add_identity,
                    use_depthwise=use_depthwise,
                    **common,
                )
            )
            self.add_module(f'stage{i + 1}', nn.Sequential(*stage))
            self.layers.append(f'stage{i + 1}')
