"""YOLO-World's vision-language PAN (VL-PAN): the YOLOv8 PAFPN with text-guided fusion
layers (YOLO-World b1b09f2 ``YOLOWorldPAFPN`` and v1's ``YOLOWorldDualPAFPN``)."""

import copy
from collections.abc import Sequence

from torch import Tensor, nn

from ai4rs.registry import MODELS

from ..layers.yolo_bricks import YOLO_ACT_CFG, YOLO_NORM_CFG
from ..utils.scaling import make_round
from .yolov8_pafpn import YOLOv8PAFPN


@MODELS.register_module()
class YOLOWorldPAFPN(YOLOv8PAFPN):
    """VL-PAN of YOLO-World v2: :class:`YOLOv8PAFPN` whose four fusion layers are
    ``block_cfg`` blocks (T-CSPLayers) that also take the text embeddings.

    Every fusion layer is built from ``block_cfg`` updated with the YOLOv8 widths and
    ``guide_channels``, ``embed_channels=make_round(embed_channels[j], widen_factor)``,
    ``num_heads=make_round(num_heads[j], widen_factor)``, ``num_blocks=make_round(
    num_csp_blocks, deepen_factor)``, ``add_identity=False``, where ``j`` is the
    OUTPUT level of the layer (top_down_layers[0]: 1, top_down_layers[1]: 0,
    bottom_up_layers[0]: 1, bottom_up_layers[1]: 2). YOLO-World's raw lists are
    ``embed_channels=[128, 256, last // 2]`` and ``num_heads=[4, 8, last // 64]``
    (32 channels per head).

    Args:
        in_channels (list[int]): unscaled input channels per level.
        out_channels (list[int]): unscaled output channels per level.
        guide_channels (int): text embedding channels (512 for CLIP ViT-B/32).
        embed_channels (list[int]): unscaled attention channels per level.
        num_heads (list[int]): unscaled attention heads per level.
        deepen_factor, widen_factor (float): depth / width multipliers.
        num_csp_blocks (int): bottlenecks per fusion layer before scaling. Defaults to 3.
        freeze_all (bool): freeze the whole neck.
        block_cfg (dict): fusion layer type: ``MaxSigmoidCSPLayerWithTwoConv``
            (default, v2) or ``EfficientCSPLayerWithTwoConv`` (efficient neck).
        norm_cfg, act_cfg (dict): BN(momentum=0.03, eps=0.001) and SiLU by default.
        init_cfg (dict, optional): None resets every Conv2d to PyTorch's default init.

    Shapes: img_feats tuple of (B, make_divisible(in_channels[i]), H_i, W_i),
    txt_feats (B, K, guide_channels) -> tuple of (B, make_divisible(out_channels[i]),
    H_i, W_i).
    """

    def __init__(
        self,
        in_channels: list[int],
        out_channels: list[int],
        guide_channels: int,
        embed_channels: list[int],
        num_heads: list[int],
        deepen_factor: float = 1.0,
        widen_factor: float = 1.0,
        num_csp_blocks: int = 3,
        freeze_all: bool = False,
        block_cfg: dict = dict(type='MaxSigmoidCSPLayerWithTwoConv'),  # noqa: B006
        norm_cfg: dict = YOLO_NORM_CFG,
        act_cfg: dict = YOLO_ACT_CFG,
        init_cfg: dict | None = None,
    ) -> None:
        self.guide_channels = guide_channels
        self.embed_channels = embed_channels
        self.num_heads = num_heads
        self.block_cfg = block_cfg
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

    def _build_block(self, channels: tuple[int, int], level: int) -> nn.Module:
        cfg = copy.deepcopy(self.block_cfg)
        cfg.update(
            in_channels=channels[0],
            out_channels=channels[1],
            guide_channels=self.guide_channels,
            embed_channels=make_round(self.embed_channels[level], self.widen_factor),
            num_heads=make_round(self.num_heads[level], self.widen_factor),
            num_blocks=self._num_blocks(),
            add_identity=False,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg,
        )
        return MODELS.build(cfg)

    def build_top_down_layer(self, idx: int) -> nn.Module:
        return self._build_block(self._top_down_channels(idx), idx - 1)

    def build_bottom_up_layer(self, idx: int) -> nn.Module:
        return self._build_block(self._bottom_up_channels(idx), idx + 1)

    def forward(
        self, img_feats: Sequence[Tensor], txt_feats: Tensor | None = None
    ) -> tuple[Tensor, ...]:
        """Fuse image features (tuple of L maps, fine to coarse) guided by text
        features (B, K, guide_channels) into L maps."""
        inner_outs = self._top_down(self._reduce(img_feats), txt_feats)
        return self._out(self._bottom_up(inner_outs, txt_feats))


@MODELS.register_module()
class YOLOWorldDualPAFPN(YOLOWorldPAFPN):
    """VL-PAN of YOLO-World v1: :class:`YOLOWorldPAFPN` whose text features are
    updated between the top-down and bottom-up paths by ``text_enhancer`` (an
    :class:`ImagePoolingAttentionModule` over the top-down outputs).

    Args:
        text_enhancder (dict): config of the text enhancer (upstream's spelling);
            ``image_channels=[int(c * widen_factor) for c in out_channels]``,
            ``text_channels=guide_channels`` and ``num_feats=len(out_channels)`` are
            filled in. Defaults to ImagePoolingAttentionModule(embed_channels=256,
            num_heads=8, pool_size=3).
        Other arguments as :class:`YOLOWorldPAFPN`.

    Shapes: as :class:`YOLOWorldPAFPN`.
    """

    def __init__(
        self,
        in_channels: list[int],
        out_channels: list[int],
        guide_channels: int,
        embed_channels: list[int],
        num_heads: list[int],
        deepen_factor: float = 1.0,
        widen_factor: float = 1.0,
        num_csp_blocks: int = 3,
        freeze_all: bool = False,
        text_enhancder: dict = dict(  # noqa: B006
            type='ImagePoolingAttentionModule', embed_channels=256, num_heads=8, pool_size=3
        ),
        block_cfg: dict = dict(type='MaxSigmoidCSPLayerWithTwoConv'),  # noqa: B006
        norm_cfg: dict = YOLO_NORM_CFG,
        act_cfg: dict = YOLO_ACT_CFG,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            guide_channels=guide_channels,
            embed_channels=embed_channels,
            num_heads=num_heads,
            deepen_factor=deepen_factor,
            widen_factor=widen_factor,
            num_csp_blocks=num_csp_blocks,
            freeze_all=freeze_all,
            block_cfg=block_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            init_cfg=init_cfg,
        )
        enhancer_cfg = copy.deepcopy(text_enhancder)
        enhancer_cfg.update(
            image_channels=[int(c * widen_factor) for c in out_channels],
            text_channels=guide_channels,
            num_feats=len(out_channels),
        )
        self.text_enhancer = MODELS.build(enhancer_cfg)

    def forward(self, img_feats: Sequence[Tensor], txt_feats: Tensor) -> tuple[Tensor, ...]:
        """As :meth:`YOLOWorldPAFPN.forward`; the bottom-up path sees the texts
        enhanced with the top-down image features."""
        inner_outs = self._top_down(self._reduce(img_feats), txt_feats)
        txt_feats = self.text_enhancer(txt_feats, inner_outs)
        return self._out(self._bottom_up(inner_outs, txt_feats))
