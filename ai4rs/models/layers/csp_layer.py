"""Cross Stage Partial (CSP) layer and the Darknet bottleneck it stacks (YOLOv5 / YOLOX)."""

import torch
from mmcv.cnn import ConvModule, DepthwiseSeparableConvModule
from mmengine.model import BaseModule
from torch import Tensor, nn

DEFAULT_NORM_CFG = dict(type='BN', momentum=0.03, eps=0.001)
DEFAULT_ACT_CFG = dict(type='Swish')


class DarknetBottleneck(BaseModule):
    """A 1x1 conv then a 3x3 conv, with an optional identity shortcut.

    ``conv1`` (1x1) maps ``in_channels`` to ``int(out_channels * expansion)``
    channels and ``conv2`` (3x3, optionally depthwise separable) maps them to
    ``out_channels``. The shortcut is added only when ``add_identity`` is True
    and ``in_channels == out_channels``.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        expansion (float): ratio of hidden to output channels. Defaults to 0.5.
        add_identity (bool): add the input to the output. Defaults to True.
        use_depthwise (bool): make the 3x3 conv depthwise separable.
        conv_cfg, norm_cfg, act_cfg (dict): as in ``mmcv.cnn.ConvModule``;
            BN(momentum=0.03, eps=0.001) and Swish by default.
        init_cfg (dict, optional): initialization config.

    Shapes: (B, in_channels, H, W) -> (B, out_channels, H, W).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        expansion: float = 0.5,
        add_identity: bool = True,
        use_depthwise: bool = False,
        conv_cfg=None,
        norm_cfg=DEFAULT_NORM_CFG,
        act_cfg=DEFAULT_ACT_CFG,
        init_cfg=None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        hidden_channels = int(out_channels * expansion)
        conv = DepthwiseSeparableConvModule if use_depthwise else ConvModule
        self.conv1 = ConvModule(
            in_channels, hidden_channels, 1, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg
        )
        self.conv2 = conv(
            hidden_channels,
            out_channels,
            3,
            stride=1,
            padding=1,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
        )
        self.add_identity = add_identity and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.conv1(x))
        return out + x if self.add_identity else out


class CSPLayer(BaseModule):
    """Cross Stage Partial layer: two 1x1 branches, one through bottlenecks.

    ``main_conv`` and ``short_conv`` (1x1) both map the input to
    ``mid = int(out_channels * expand_ratio)`` channels; ``blocks`` (``num_blocks``
    :class:`DarknetBottleneck` with expansion 1.0) process the main branch;
    ``final_conv`` (1x1) fuses ``cat(main, short)`` (2 * mid channels) to
    ``out_channels``.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        expand_ratio (float): ratio of the branch width to ``out_channels``.
        num_blocks (int): number of bottlenecks. Defaults to 1.
        add_identity (bool): shortcut inside the bottlenecks. Defaults to True.
        use_depthwise (bool): depthwise separable 3x3 convs in the bottlenecks.
        conv_cfg, norm_cfg, act_cfg (dict): as in ``mmcv.cnn.ConvModule``.
        init_cfg (dict, optional): initialization config.

    Shapes: (B, in_channels, H, W) -> (B, out_channels, H, W).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        expand_ratio: float = 0.5,
        num_blocks: int = 1,
        add_identity: bool = True,
        use_depthwise: bool = False,
        conv_cfg=None,
        norm_cfg=DEFAULT_NORM_CFG,
        act_cfg=DEFAULT_ACT_CFG,
        init_cfg=None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        mid_channels = int(out_channels * expand_ratio)
        common = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.main_conv = ConvModule(in_channels, mid_channels, 1, **common)
        self.short_conv = ConvModule(in_channels, mid_channels, 1, **common)
        self.final_conv = ConvModule(2 * mid_channels, out_channels, 1, **common)
        self.blocks = nn.Sequential(
            *[
                DarknetBottleneck(
                    mid_channels, mid_channels, 1.0, add_identity, use_depthwise, **common
                )
                for _ in range(num_blocks)
            ]
        )

    def forward(self, x: Tensor) -> Tensor:
        x_short = self.short_conv(x)
        x_main = self.blocks(self.main_conv(x))
        return self.final_conv(torch.cat((x_main, x_short), dim=1))
