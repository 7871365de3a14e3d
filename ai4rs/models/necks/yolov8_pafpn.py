"""YOLOv8 path-aggregation FPN (mmyolo 0.6.0 ``YOLOv8PAFPN``)."""

from torch import nn

from ai4rs.registry import MODELS

from ..layers.yolo_bricks import YOLO_ACT_CFG, YOLO_NORM_CFG, CSPLayerWithTwoConv
from .yolov5_pafpn import YOLOv5PAFPN


@MODELS.register_module()
class YOLOv8PAFPN(YOLOv5PAFPN):
    """YOLOv8 PAFPN: :class:`YOLOv5PAFPN` with Identity reduce layers and
    :class:`CSPLayerWithTwoConv` fusion layers (no shortcut).

    ``top_down_layers[L-1-i]`` maps ``in_channels[i-1] + in_channels[i]`` to
    ``out_channels[i-1]``; ``bottom_up_layers[i]`` maps ``out_channels[i] +
    out_channels[i+1]`` to ``out_channels[i+1]``; ``downsample_layers[i]`` is a 3x3
    stride-2 conv of ``in_channels[i]`` channels (upstream's choice; YOLOv8 and
    YOLO-World have ``in_channels == out_channels``). All widths go through
    ``make_divisible(c, widen_factor)``.

    Args:
        in_channels (list[int]): unscaled input channels per level.
        out_channels (list[int]): unscaled output channels per level.
        deepen_factor, widen_factor (float): depth / width multipliers.
        num_csp_blocks (int): bottlenecks per CSP layer before scaling. Defaults to 3.
        freeze_all (bool): freeze the whole neck.
        norm_cfg, act_cfg (dict): BN(momentum=0.03, eps=0.001) and SiLU by default.
        init_cfg (dict, optional): initialization config (see :class:`YOLOv5PAFPN`).

    Shapes: tuple of (B, make_divisible(in_channels[i]), H_i, W_i) -> tuple of
    (B, make_divisible(out_channels[i]), H_i, W_i).
    """

    def __init__(
        self,
        in_channels: list[int],
        out_channels: list[int],
        deepen_factor: float = 1.0,
        widen_factor: float = 1.0,
        num_csp_blocks: int = 3,
        freeze_all: bool = False,
        norm_cfg: dict = YOLO_NORM_CFG,
        act_cfg: dict = YOLO_ACT_CFG,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            deepen_factor=deepen_factor,
            widen_factor=widen_factor,
            num_csp_blocks=num_csp_blocks,
            freeze_all=freeze_all,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            init_cfg=init_cfg,
        )

    def build_reduce_layer(self, idx: int) -> nn.Module:
        return nn.Identity()

    def _top_down_channels(self, idx: int) -> tuple[int, int]:
        """(in, out) widths of the top-down layer fusing level ``idx`` into ``idx - 1``."""
        return (
            self._width(self.in_channels[idx - 1] + self.in_channels[idx]),
            self._width(self.out_channels[idx - 1]),
        )

    def _bottom_up_channels(self, idx: int) -> tuple[int, int]:
        """(in, out) widths of the bottom-up layer fusing level ``idx`` into ``idx + 1``."""
        return (
            self._width(self.out_channels[idx] + self.out_channels[idx + 1]),
            self._width(self.out_channels[idx + 1]),
        )

    def build_top_down_layer(self, idx: int) -> nn.Module:
        return CSPLayerWithTwoConv(
            *self._top_down_channels(idx),
            num_blocks=self._num_blocks(),
            add_identity=False,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg,
        )

    def build_bottom_up_layer(self, idx: int) -> nn.Module:
        return CSPLayerWithTwoConv(
            *self._bottom_up_channels(idx),
            num_blocks=self._num_blocks(),
            add_identity=False,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg,
        )
