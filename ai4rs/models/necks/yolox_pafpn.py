"""Path aggregation FPN of YOLOX (top-down then bottom-up CSP fusion)."""

from collections.abc import Sequence

import torch
from mmcv.cnn import ConvModule, DepthwiseSeparableConvModule
from mmengine.model import BaseModule
from torch import Tensor, nn

from ai4rs.registry import MODELS

from ..layers import CSPLayer
from ..layers.csp_layer import DEFAULT_ACT_CFG, DEFAULT_NORM_CFG
from ..layers.init_cfg import YOLOX_CONV_INIT


@MODELS.register_module()
class YOLOXPAFPN(BaseModule):
    """YOLOX PAFPN.

    Top-down: for levels from the coarsest, ``reduce_layers[j]`` (1x1) maps level
    ``i`` to the channels of level ``i - 1``, it is upsampled, concatenated with
    level ``i - 1`` and fused by ``top_down_blocks[j]`` (CSPLayer without
    shortcut). Bottom-up: ``downsamples[i]`` (3x3 stride 2) and
    ``bottom_up_blocks[i]`` fuse back to the coarser levels. ``out_convs[i]``
    (1x1) map every level to ``out_channels``.

    Args:
        in_channels (Sequence[int]): channels of each input level (fine to coarse).
        out_channels (int): channels of every output level.
        num_csp_blocks (int): bottlenecks per CSPLayer. Defaults to 3.
        use_depthwise (bool): depthwise separable 3x3 convs. Defaults to False.
        upsample_cfg (dict): ``nn.Upsample`` arguments. Defaults to nearest x2.
        conv_cfg, norm_cfg, act_cfg (dict): ConvModule configs.
        init_cfg (dict): Kaiming-uniform on Conv2d by default.

    Shapes: tuple of (B, in_channels[i], H_i, W_i) -> tuple of (B, out_channels, H_i, W_i).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int,
        num_csp_blocks: int = 3,
        use_depthwise: bool = False,
        upsample_cfg: dict = dict(scale_factor=2, mode='nearest'),  # noqa: B006
        conv_cfg=None,
        norm_cfg=DEFAULT_NORM_CFG,
        act_cfg=DEFAULT_ACT_CFG,
        init_cfg=YOLOX_CONV_INIT,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = list(in_channels)
        self.out_channels = out_channels
        common = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        conv = DepthwiseSeparableConvModule if use_depthwise else ConvModule
        num_levels = len(self.in_channels)

        self.upsample = nn.Upsample(**upsample_cfg)
        self.reduce_layers = nn.ModuleList()
        self.top_down_blocks = nn.ModuleList()
        for idx in range(num_levels - 1, 0, -1):
            self.reduce_layers.append(
                ConvModule(self.in_channels[idx], self.in_channels[idx - 1], 1, **common)
            )
            self.top_down_blocks.append(
                CSPLayer(
                    self.in_channels[idx - 1] * 2,
                    self.in_channels[idx - 1],
                    num_blocks=num_csp_blocks,
                    add_identity=False,
                    use_depthwise=use_depthwise,
                    **common,
                )
            )

        self.downsamples = nn.ModuleList()
        self.bottom_up_blocks = nn.ModuleList()
        for idx in range(num_levels - 1):
            self.downsamples.append(
                conv(self.in_channels[idx], self.in_channels[idx], 3, stride=2, padding=1, **common)
            )
            self.bottom_up_blocks.append(
                CSPLayer(
                    self.in_channels[idx] * 2,
                    self.in_channels[idx + 1],
                    num_blocks=num_csp_blocks,
                    add_identity=False,
                    use_depthwise=use_depthwise,
                    **common,
                )
            )

        self.out_convs = nn.ModuleList(
            [ConvModule(ch, out_channels, 1, **common) for ch in self.in_channels]
        )

    def forward(self, inputs: Sequence[Tensor]) -> tuple[Tensor, ...]:
        if len(inputs) != len(self.in_channels):
            raise ValueError(
                f'YOLOXPAFPN: expected {len(self.in_channels)} feature maps, got {len(inputs)}'
            )
        num_levels = len(self.in_channels)
        # top-down path: inner_outs[0] is always the finest level processed so far
        inner_outs = [inputs[-1]]
        for idx in range(num_levels - 1, 0, -1):
            j = num_levels - 1 - idx
            feat_high = self.reduce_layers[j](inner_outs[0])
            inner_outs[0] = feat_high
            fused = self.top_down_blocks[j](
                torch.cat([self.upsample(feat_high), inputs[idx - 1]], dim=1)
            )
            inner_outs.insert(0, fused)
        # bottom-up path
        outs = [inner_outs[0]]
        for idx in range(num_levels - 1):
            down = self.downsamples[idx](outs[-1])
            outs.append(self.bottom_up_blocks[idx](torch.cat([down, inner_outs[idx + 1]], dim=1)))
        return tuple(conv(out) for conv, out in zip(self.out_convs, outs))
