"""The path-aggregation skeleton shared by the YOLOv5/v8/YOLO-World necks (mmyolo's
``BaseYOLONeck``)."""

from abc import ABCMeta, abstractmethod
from collections.abc import Sequence

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from ..utils.freeze import freeze_norms_and_params


class BaseYOLONeck(BaseModule, metaclass=ABCMeta):
    """Top-down then bottom-up feature fusion over L levels (fine to coarse).

    Submodules, in this (state_dict) order: ``reduce_layers`` (one per level),
    ``upsample_layers`` and ``top_down_layers`` (L - 1 each, from the coarsest),
    ``downsample_layers`` and ``bottom_up_layers`` (L - 1 each, from the finest),
    ``out_layers`` (one per level). Subclasses build them in the ``build_*`` hooks.

    Top-down, for level ``i`` from L-1 down to 1: ``top_down_layers[L-1-i]`` fuses
    ``cat(upsample(inner[i]), reduced[i-1])`` (``cat(reduced[i-1], upsampled)`` when
    ``upsample_feats_cat_first`` is False) into ``inner[i-1]``. Bottom-up, for
    ``i`` from 0: ``bottom_up_layers[i]`` fuses ``cat(downsample(out[i]),
    inner[i+1])`` into ``out[i+1]``. Finally ``out_layers[i](out[i])``.

    Args:
        in_channels (list[int]): unscaled input channels per level.
        out_channels (int | list[int]): unscaled output channels.
        deepen_factor, widen_factor (float): depth / width multipliers.
        upsample_feats_cat_first (bool): order of the top-down concatenation.
        freeze_all (bool): keep the whole neck frozen (BN eval, no gradients).
        norm_cfg, act_cfg (dict): ConvModule configs used by subclasses.
        init_cfg (dict, optional): initialization config.
    """

    def __init__(
        self,
        in_channels: list[int],
        out_channels: int | list[int],
        deepen_factor: float = 1.0,
        widen_factor: float = 1.0,
        upsample_feats_cat_first: bool = True,
        freeze_all: bool = False,
        norm_cfg: dict | None = None,
        act_cfg: dict | None = None,
        init_cfg: dict | None = None,
        **kwargs,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.deepen_factor = deepen_factor
        self.widen_factor = widen_factor
        self.upsample_feats_cat_first = upsample_feats_cat_first
        self.freeze_all = freeze_all
        self.norm_cfg = norm_cfg
        self.act_cfg = act_cfg
        num_levels = len(in_channels)

        self.reduce_layers = nn.ModuleList(
            self.build_reduce_layer(idx) for idx in range(num_levels)
        )
        self.upsample_layers = nn.ModuleList()
        self.top_down_layers = nn.ModuleList()
        for idx in range(num_levels - 1, 0, -1):
            self.upsample_layers.append(self.build_upsample_layer(idx))
            self.top_down_layers.append(self.build_top_down_layer(idx))
        self.downsample_layers = nn.ModuleList()
        self.bottom_up_layers = nn.ModuleList()
        for idx in range(num_levels - 1):
            self.downsample_layers.append(self.build_downsample_layer(idx))
            self.bottom_up_layers.append(self.build_bottom_up_layer(idx))
        self.out_layers = nn.ModuleList(self.build_out_layer(idx) for idx in range(num_levels))

    @abstractmethod
    def build_reduce_layer(self, idx: int) -> nn.Module:
        """The layer applied to input level ``idx`` first."""

    @abstractmethod
    def build_upsample_layer(self, idx: int) -> nn.Module:
        """Upsampling of level ``idx`` to level ``idx - 1``."""

    @abstractmethod
    def build_top_down_layer(self, idx: int) -> nn.Module:
        """Fusion of upsampled level ``idx`` with level ``idx - 1``."""

    @abstractmethod
    def build_downsample_layer(self, idx: int) -> nn.Module:
        """Downsampling of output level ``idx`` to level ``idx + 1``."""

    @abstractmethod
    def build_bottom_up_layer(self, idx: int) -> nn.Module:
        """Fusion of downsampled level ``idx`` with level ``idx + 1``."""

    @abstractmethod
    def build_out_layer(self, idx: int) -> nn.Module:
        """The layer applied to output level ``idx`` last."""

    def _freeze_all(self) -> None:
        freeze_norms_and_params(self)

    def train(self, mode: bool = True):
        """Train mode; with ``freeze_all`` BN stays in eval mode and nothing trains."""
        super().train(mode)
        return freeze_norms_and_params(self) if self.freeze_all else self

    # the forward pass in three steps, so that text-guided necks can pass the texts
    # to the fusion layers (``*guide``) and change them between the two paths
    def _reduce(self, inputs: Sequence[Tensor]) -> list[Tensor]:
        if len(inputs) != len(self.in_channels):
            raise ValueError(
                f'{type(self).__name__}: expected {len(self.in_channels)} '
                f'feature maps, got {len(inputs)}'
            )
        return [layer(x) for layer, x in zip(self.reduce_layers, inputs)]

    def _top_down(self, reduce_outs: list[Tensor], *guide) -> list[Tensor]:
        num_levels = len(self.in_channels)
        inner_outs = [reduce_outs[-1]]
        for idx in range(num_levels - 1, 0, -1):
            j = num_levels - 1 - idx
            upsampled = self.upsample_layers[j](inner_outs[0])
            feat_low = reduce_outs[idx - 1]
            if self.upsample_feats_cat_first:
                fused_in = torch.cat([upsampled, feat_low], 1)
            else:
                fused_in = torch.cat([feat_low, upsampled], 1)
            inner_outs.insert(0, self.top_down_layers[j](fused_in, *guide))
        return inner_outs

    def _bottom_up(self, inner_outs: list[Tensor], *guide) -> list[Tensor]:
        outs = [inner_outs[0]]
        for idx in range(len(self.in_channels) - 1):
            downsampled = self.downsample_layers[idx](outs[-1])
            outs.append(
                self.bottom_up_layers[idx](torch.cat([downsampled, inner_outs[idx + 1]], 1), *guide)
            )
        return outs

    def _out(self, outs: list[Tensor]) -> tuple[Tensor, ...]:
        return tuple(layer(x) for layer, x in zip(self.out_layers, outs))

    def forward(self, inputs: Sequence[Tensor]) -> tuple[Tensor, ...]:
        """Tuple of L maps (B, C_i, H_i, W_i), fine to coarse -> tuple of L fused maps."""
        return self._out(self._bottom_up(self._top_down(self._reduce(inputs))))
