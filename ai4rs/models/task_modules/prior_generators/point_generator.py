"""Point priors on the grid of every feature level (anchor-free heads)."""

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn.modules.utils import _pair

from ai4rs.registry import TASK_UTILS

DeviceType = str | torch.device


@TASK_UTILS.register_module()
class MlvlPointGenerator:
    """One prior point per feature-map cell on each level.

    The prior of cell (row, col) on a level with stride (sw, sh) is
    ``((col + offset) * sw, (row + offset) * sh)``; with ``with_stride`` the
    strides are appended, giving ``(x, y, sw, sh)``. Priors are ordered
    row-major (x fastest), as the flattened ``(H, W)`` feature map.

    Args:
        strides (Sequence[int | tuple[int, int]]): stride of each level; a pair is (w, h).
        offset (float): offset of the point inside its cell, in units of the
            stride. Defaults to 0.5 (cell centre); YOLOX uses 0.
    """

    def __init__(self, strides: Sequence[int | tuple[int, int]], offset: float = 0.5) -> None:
        self.strides = [_pair(stride) for stride in strides]
        self.offset = offset

    @property
    def num_levels(self) -> int:
        return len(self.strides)

    @property
    def num_base_priors(self) -> list[int]:
        return [1 for _ in range(self.num_levels)]

    def grid_priors(
        self,
        featmap_sizes: Sequence[tuple[int, int]],
        dtype: torch.dtype = torch.float32,
        device: DeviceType = 'cpu',
        with_stride: bool = False,
    ) -> list[Tensor]:
        """Priors of all levels: a list of (H_i * W_i, 2) or (H_i * W_i, 4) tensors."""
        if len(featmap_sizes) != self.num_levels:
            raise ValueError(
                f'MlvlPointGenerator: got {len(featmap_sizes)} feature map sizes '
                f'for {self.num_levels} strides'
            )
        return [
            self.single_level_grid_priors(
                featmap_sizes[i], i, dtype=dtype, device=device, with_stride=with_stride
            )
            for i in range(self.num_levels)
        ]

    def single_level_grid_priors(
        self,
        featmap_size: tuple[int, int],
        level_idx: int,
        dtype: torch.dtype = torch.float32,
        device: DeviceType = 'cpu',
        with_stride: bool = False,
    ) -> Tensor:
        """Priors of one level: (H * W, 2) as (x, y), or (H * W, 4) as (x, y, sw, sh)."""
        feat_h, feat_w = int(featmap_size[0]), int(featmap_size[1])
        stride_w, stride_h = self.strides[level_idx]
        shift_x = ((torch.arange(feat_w, device=device) + self.offset) * stride_w).to(dtype)
        shift_y = ((torch.arange(feat_h, device=device) + self.offset) * stride_h).to(dtype)
        yy, xx = torch.meshgrid(shift_y, shift_x, indexing='ij')
        columns = [xx.reshape(-1), yy.reshape(-1)]
        if with_stride:
            columns += [xx.new_full((xx.numel(),), stride_w), xx.new_full((xx.numel(),), stride_h)]
        return torch.stack(columns, dim=-1)

    def valid_flags(
        self,
        featmap_sizes: Sequence[tuple[int, int]],
        pad_shape: tuple[int, int],
        device: DeviceType = 'cpu',
    ) -> list[Tensor]:
        """Per level, (H_i * W_i,) bool: whether the cell lies inside the unpadded image."""
        flags = []
        for i, (feat_h, feat_w) in enumerate(featmap_sizes):
            stride_w, stride_h = self.strides[i]
            valid_h = min(int(-(-pad_shape[0] // stride_h)), feat_h)
            valid_w = min(int(-(-pad_shape[1] // stride_w)), feat_w)
            valid_y = torch.arange(feat_h, device=device) < valid_h
            valid_x = torch.arange(feat_w, device=device) < valid_w
            flags.append((valid_y[:, None] & valid_x[None, :]).reshape(-1))
        return flags
