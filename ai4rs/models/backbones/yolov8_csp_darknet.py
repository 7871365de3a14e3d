"""YOLOv8 CSPDarknet backbone (mmyolo 0.6.0 ``YOLOv8CSPDarknet``): the image side of
YOLO-World."""

from collections.abc import Sequence

from mmcv.cnn import ConvModule, build_plugin_layer
from torch import nn

from ai4rs.registry import MODELS

from ..layers.yolo_bricks import YOLO_ACT_CFG, YOLO_NORM_CFG, CSPLayerWithTwoConv, SPPFBottleneck
from ..utils.scaling import make_divisible, make_round
from .base_backbone import StagedBackbone


@MODELS.register_module()
class YOLOv8CSPDarknet(StagedBackbone):
    """CSPDarknet of YOLOv8: a 3x3 stride-2 stem, then four stages of
    (3x3 stride-2 conv, :class:`CSPLayerWithTwoConv` [, SPPF]).

    The P5 arch rows are ``[in_channels, out_channels, num_blocks, add_identity,
    use_spp]``: [64, 128, 3, True, False], [128, 256, 6, True, False],
    [256, 512, 6, True, False], [512, last_stage_out_channels, 3, True, True].
    Channels are scaled with ``make_divisible(c, widen_factor)`` (rounded up to a
    multiple of 8) and blocks with ``make_round(n, deepen_factor)``. Module names:
    ``stem``, ``stage1`` ... ``stage4``; each stage is an ``nn.Sequential`` of
    ``0`` (downsampling conv), ``1`` (CSP layer), ``2`` (SPPF with kernel 5, last
    stage only), then any plugins. Output index 0 is the stem. Freezing, ``norm_eval`` and
    the forward pass: :class:`StagedBackbone`.

    Args:
        arch (str): only 'P5'. Defaults to 'P5'.
        last_stage_out_channels (int): unscaled output channels of stage 4.
            Defaults to 1024 (YOLO-World: S 1024, M 768, L/X 512).
        plugins (list[dict], optional): mmcv plugin layers appended to stages, each
            ``dict(cfg=..., stages=(bool, bool, bool, bool))`` (upstream's format).
        deepen_factor (float): depth multiplier. Defaults to 1.0.
        widen_factor (float): width multiplier. Defaults to 1.0.
        input_channels (int): image channels. Defaults to 3.
        out_indices (Sequence[int]): layers to return. Defaults to (2, 3, 4).
        frozen_stages (int): freeze the stem and stages 1..frozen_stages (eval mode,
            no gradients); -1 freezes nothing, 0 the stem only. Defaults to -1.
        norm_cfg (dict): BN(momentum=0.03, eps=0.001) by default.
        act_cfg (dict): SiLU(inplace=True) by default.
        norm_eval (bool): keep every BatchNorm in eval mode while training.
        init_cfg (dict, optional): None resets every Conv2d to PyTorch's default
            init in ``init_weights`` (as upstream); otherwise mmengine's init.

    Shapes: (B, input_channels, H, W) -> tuple of (B, C_i, H / s_i, W / s_i),
    s = 2, 4, 8, 16, 32 for indices 0..4; e.g. v2-L at 640: (B, 256, 80, 80),
    (B, 512, 40, 40), (B, 512, 20, 20).
    """

    # in_channels, out_channels (None: last_stage_out_channels), num_blocks,
    # add_identity, use_spp
    arch_settings = {
        'P5': [
            [64, 128, 3, True, False],
            [128, 256, 6, True, False],
            [256, 512, 6, True, False],
            [512, None, 3, True, True],
        ],
    }

    def __init__(
        self,
        arch: str = 'P5',
        last_stage_out_channels: int = 1024,
        plugins: dict | list[dict] | None = None,
        deepen_factor: float = 1.0,
        widen_factor: float = 1.0,
        input_channels: int = 3,
        out_indices: Sequence[int] = (2, 3, 4),
        frozen_stages: int = -1,
        norm_cfg: dict = YOLO_NORM_CFG,
        act_cfg: dict = YOLO_ACT_CFG,
        norm_eval: bool = False,
        init_cfg: dict | None = None,
    ) -> None:
        # a copy: upstream writes last_stage_out_channels into the class attribute
        arch_setting = self.select_arch(arch)
        arch_setting[-1][1] = last_stage_out_channels
        super().__init__(len(arch_setting) + 1, out_indices, frozen_stages, norm_eval, init_cfg)
        if isinstance(plugins, dict):
            plugins = [plugins]
        self.arch_setting = arch_setting
        self.num_stages = len(arch_setting)
        self.input_channels = input_channels
        self.widen_factor = widen_factor
        self.deepen_factor = deepen_factor
        self.norm_cfg = norm_cfg
        self.act_cfg = act_cfg
        self.plugins = plugins

        self.stem = ConvModule(
            input_channels,
            make_divisible(arch_setting[0][0], widen_factor),
            kernel_size=3,
            stride=2,
            padding=1,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
        )
        self.layers.append('stem')
        for idx, setting in enumerate(arch_setting):
            stage = self._build_stage(setting)
            if plugins is not None:
                stage += self._build_stage_plugins(plugins, idx, setting)
            self.add_module(f'stage{idx + 1}', nn.Sequential(*stage))
            self.layers.append(f'stage{idx + 1}')

    def _build_stage(self, setting: list) -> list[nn.Module]:
        in_channels, out_channels, num_blocks, add_identity, use_spp = setting
        in_channels = make_divisible(in_channels, self.widen_factor)
        out_channels = make_divisible(out_channels, self.widen_factor)
        num_blocks = make_round(num_blocks, self.deepen_factor)
        common = dict(norm_cfg=self.norm_cfg, act_cfg=self.act_cfg)
        stage = [
            ConvModule(in_channels, out_channels, kernel_size=3, stride=2, padding=1, **common),
            CSPLayerWithTwoConv(
                out_channels,
                out_channels,
                num_blocks=num_blocks,
                add_identity=add_identity,
                **common,
            ),
        ]
        if use_spp:
            stage.append(SPPFBottleneck(out_channels, out_channels, kernel_sizes=5, **common))
        return stage

    def _build_stage_plugins(
        self, plugins: list[dict], stage_idx: int, setting: list
    ) -> list[nn.Module]:
        """mmcv plugin layers for one stage; their input width is
        ``int(out_channels * widen_factor)`` (upstream's rule)."""
        in_channels = int(setting[1] * self.widen_factor)
        layers = []
        for plugin in plugins:
            plugin = dict(plugin)
            stages = plugin.pop('stages', None)
            if stages is not None and len(stages) != self.num_stages:
                raise ValueError(
                    f'YOLOv8CSPDarknet: plugin stages {stages} must have {self.num_stages} entries'
                )
            if stages is None or stages[stage_idx]:
                _, layer = build_plugin_layer(plugin['cfg'], in_channels=in_channels)
                layers.append(layer)
        return layers

    def init_weights(self) -> None:
        """With ``init_cfg`` None, reset every Conv2d to PyTorch's default init."""
        if self.init_cfg is None:
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    m.reset_parameters()
        else:
            super().init_weights()
