"""Spatial pyramid pooling bottleneck (SPP) used at the end of CSPDarknet."""

from collections.abc import Sequence

import torch
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor, nn

from .csp_layer import DEFAULT_ACT_CFG, DEFAULT_NORM_CFG


class SPPBottleneck(BaseModule):
    """``conv1`` (1x1, to in_channels // 2), parallel stride-1 max pools, ``conv2``.

    The pooled maps (kernel sizes ``kernel_sizes``, 'same' padding) are
    concatenated with their input, so ``conv2`` (1x1) sees
    ``in_channels // 2 * (len(kernel_sizes) + 1)`` channels. The pooling and
    concatenation run with autocast disabled, as upstream does.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        kernel_sizes (Sequence[int]): max-pool kernel sizes. Defaults to (5, 9, 13).
        conv_cfg, norm_cfg, act_cfg (dict): as in ``mmcv.cnn.ConvModule``.
        init_cfg (dict, optional): initialization config.

    Shapes: (B, in_channels, H, W) -> (B, out_channels, H, W).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_sizes: Sequence[int] = (5, 9, 13),
        conv_cfg=None,
        norm_cfg=DEFAULT_NORM_CFG,
        act_cfg=DEFAULT_ACT_CFG,
        init_cfg=None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        mid_channels = in_channels // 2
        common = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.conv1 = ConvModule(in_channels, mid_channels, 1, stride=1, **common)
        self.poolings = nn.ModuleList(
            [nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2) for k in kernel_sizes]
        )
        self.conv2 = ConvModule(mid_channels * (len(kernel_sizes) + 1), out_channels, 1, **common)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = torch.cat([x] + [pooling(x) for pooling in self.poolings], dim=1)
        return self.conv2(x)
