"""YOLOv5 path-aggregation FPN (mmyolo 0.6.0 ``YOLOv5PAFPN``), the base of YOLOv8's."""

import torch
from mmcv.cnn import ConvModule
from torch import nn

from ai4rs.registry import MODELS

from ..layers import CSPLayer
from ..layers.yolo_bricks import YOLO_ACT_CFG, YOLO_NORM_CFG
from ..utils.scaling import make_divisible, make_round
from .base_yolo_neck import BaseYOLONeck


@MODELS.register_module()
class YOLOv5PAFPN(BaseYOLONeck):
    """YOLOv5 PAFPN (P5 and P6).

    ``reduce_layers``: a 1x1 conv on the coarsest level (to the channels of the
    next finer one), Identity elsewhere. ``upsample_layers``: nearest x2.
    ``top_down_layers``: a CSPLayer (no shortcut), followed by a 1x1 conv to the
    next finer channels except for the last one. ``downsample_layers``: 3x3
    stride-2 conv. ``bottom_up_layers``: CSPLayer. ``out_layers``: Identity.
    Channels are scaled with ``make_divisible(c, widen_factor)``, CSP blocks with
    ``make_round(num_csp_blocks, deepen_factor)``.

    Args:
        in_channels (list[int]): unscaled input channels per level.
        out_channels (int | list[int]): unscaled output channels (kept for configs).
        deepen_factor, widen_factor (float): depth / width multipliers.
        num_csp_blocks (int): bottlenecks per CSP layer before scaling. Defaults to 1.
        freeze_all (bool): freeze the whole neck.
        norm_cfg (dict): BN(momentum=0.03, eps=0.001) by default.
        act_cfg (dict): SiLU(inplace=True) by default.
        init_cfg (dict, optional): None resets every Conv2d to PyTorch's default
            init in ``init_weights`` (as upstream).

    Shapes: tuple of (B, make_divisible(in_channels[i]), H_i, W_i) -> tuple of the same
    number of maps, at the same resolutions.
    """

    def __init__(
        self,
        in_channels: list[int],
        out_channels: int | list[int],
        deepen_factor: float = 1.0,
        widen_factor: float = 1.0,
        num_csp_blocks: int = 1,
        freeze_all: bool = False,
        norm_cfg: dict = YOLO_NORM_CFG,
        act_cfg: dict = YOLO_ACT_CFG,
        init_cfg: dict | None = None,
    ) -> None:
        self.num_csp_blocks = num_csp_blocks
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            deepen_factor=deepen_factor,
            widen_factor=widen_factor,
            freeze_all=freeze_all,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            init_cfg=init_cfg,
        )

    def init_weights(self) -> None:
        """With ``init_cfg`` None, reset every Conv2d to PyTorch's default init."""
        if self.init_cfg is None:
            for m in self.modules():
                if isinstance(m, torch.nn.Conv2d):
                    m.reset_parameters()
        else:
            super().init_weights()

    def _width(self, channels: int) -> int:
        return make_divisible(channels, self.widen_factor)

    def _num_blocks(self) -> int:
        return make_round(self.num_csp_blocks, self.deepen_factor)

    def build_reduce_layer(self, idx: int) -> nn.Module:
        if idx == len(self.in_channels) - 1:
            return ConvModule(
                self._width(self.in_channels[idx]),
                self._width(self.in_channels[idx - 1]),
                1,
                norm_cfg=self.norm_cfg,
                act_cfg=self.act_cfg,
            )
        return nn.Identity()

    def build_upsample_layer(self, idx: int) -> nn.Module:
        return nn.Upsample(scale_factor=2, mode='nearest')

    def build_top_down_layer(self, idx: int) -> nn.Module:
        csp = CSPLayer(
            self._width(self.in_channels[idx - 1] * 2),
            self._width(self.in_channels[idx - 1]),
            num_blocks=self._num_blocks(),
            add_identity=False,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg,
        )
        if idx == 1:
            return csp
        return nn.Sequential(
            csp,
            ConvModule(
                self._width(self.in_channels[idx - 1]),
                self._width(self.in_channels[idx - 2]),
                kernel_size=1,
                norm_cfg=self.norm_cfg,
                act_cfg=self.act_cfg,
            ),
        )

    def build_downsample_layer(self, idx: int) -> nn.Module:
        width = self._width(self.in_channels[idx])
        return ConvModule(
            width,
            width,
            kernel_size=3,
            stride=2,
            padding=1,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg,
        )

    def build_bottom_up_layer(self, idx: int) -> nn.Module:
        return CSPLayer(
            self._width(self.in_channels[idx] * 2),
            self._width(self.in_channels[idx + 1]),
            num_blocks=self._num_blocks(),
            add_identity=False,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg,
        )

    def build_out_layer(self, idx: int) -> nn.Module:
        return nn.Identity()
