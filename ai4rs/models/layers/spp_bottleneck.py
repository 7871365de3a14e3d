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
        #: inference: the pools as a chain of the first (see :meth:`chain_pools`)
        self.pools_chained = False

    def pools_chainable(self) -> bool:
        """Whether each pool equals the previous one followed by the first: kernel sizes
        k, 2k - 1, 3k - 2, ... (YOLOX's (5, 9, 13)). Stride-1 max pools with 'same' (-inf)
        padding compose exactly: a k1 pool after a k2 pool is a (k1 + k2 - 1) pool."""
        sizes = [p.kernel_size for p in self.poolings]
        if not sizes or any(not isinstance(k, int) or k % 2 == 0 for k in sizes):
            return False
        return all(b - a == sizes[0] - 1 for a, b in zip(sizes, sizes[1:]))

    def chain_pools(self) -> bool:
        """Compute the pools as a chain of the first one (SPPF's trick: the same values, a
        5x5 window per step instead of 9x9 and 13x13), when :meth:`pools_chainable`; returns
        whether it does. Used by the inference mode; training keeps the parallel pools
        (with ties, the chain's gradient may pick another maximum)."""
        self.pools_chained = self.pools_chainable()
        return self.pools_chained

    def _pooled(self, x: Tensor) -> list[Tensor]:
        if not self.pools_chained:
            return [pooling(x) for pooling in self.poolings]
        first, out = self.poolings[0], []
        for _ in self.poolings:
            x = first(x)
            out.append(x)
        return out

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = torch.cat([x] + self._pooled(x), dim=1)
        return self.conv2(x)
