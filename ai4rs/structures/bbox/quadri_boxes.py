"""Quadrilateral boxes (8 corner coordinates): mmrotate 1.x ``QuadriBoxes``, 'qbox'."""

import warnings

import numpy as np
import torch
from torch import BoolTensor, Tensor

from .base_boxes import (
    BaseBoxes,
    apply_affine,
    check_flip_direction,
    check_pair,
    register_box,
    rotation_matrix,
)
from .geometry import min_area_rect, rbox_corners
from .mask_points import convex_hull, mask_point_sets


@register_box('qbox')
class QuadriBoxes(BaseBoxes):
    """Convex quadrilaterals, (..., 8) as ``(x1, y1, x2, y2, x3, y3, x4, y4)``; the vertex
    order may be clockwise or counter-clockwise.

    Args:
        data (Tensor | np.ndarray | Sequence): (..., 8) box data.
        dtype (torch.dtype, optional): Cast to this dtype.
        device (str | torch.device, optional): Move to this device.
        clone (bool): Copy the data. Defaults to True.
    """

    box_dim = 8

    @property
    def vertices(self) -> Tensor:
        """(..., 4, 2) vertices."""
        return self.tensor.reshape(*self.tensor.shape[:-1], 4, 2)

    @property
    def centers(self) -> Tensor:
        """(..., 2) mean of the 4 vertices."""
        return self.vertices.mean(dim=-2)

    @property
    def areas(self) -> Tensor:
        """(...) polygon areas (shoelace, either orientation)."""
        pts = self.vertices
        nxt = torch.roll(pts, -1, dims=-2)
        cross = pts[..., 0] * nxt[..., 1] - nxt[..., 0] * pts[..., 1]
        return 0.5 * cross.sum(dim=-1).abs()

    @property
    def widths(self) -> Tensor:
        """``sqrt(areas)``: quadrilaterals have no width (as mmrotate, with a warning)."""
        warnings.warn(
            "Quadrilateral boxes don't have the width concept. We use "
            '``sqrt(areas)`` to replace the width.'
        )
        return torch.sqrt(self.areas)

    @property
    def heights(self) -> Tensor:
        """``sqrt(areas)``: quadrilaterals have no height (as mmrotate, with a warning)."""
        warnings.warn(
            "Quadrilateral boxes don't have the height concept. We use "
            '``sqrt(areas)`` to replace the height.'
        )
        return torch.sqrt(self.areas)

    def flip_(self, img_shape: tuple[int, int], direction: str = 'horizontal') -> None:
        """Flip every vertex in place (x -> W - x, y -> H - y, or both)."""
        check_flip_direction(direction)
        b = self.tensor
        if direction in ('horizontal', 'diagonal'):
            b[..., 0::2] = img_shape[1] - b[..., 0::2]
        if direction in ('vertical', 'diagonal'):
            b[..., 1::2] = img_shape[0] - b[..., 1::2]

    def translate_(self, distances: tuple[float, float]) -> None:
        dx, dy = check_pair(distances, 'distances')
        self.tensor = self.tensor + self.tensor.new_tensor([dx, dy]).repeat(4)

    def clip_(self, img_shape: tuple[int, int]) -> None:
        """Does nothing (as mmrotate)."""
        warnings.warn('The `clip` function does nothing in `QuadriBoxes`.')

    def rotate_(self, center: tuple[float, float], angle: float) -> None:
        """Rotate every vertex about ``center`` by ``angle`` degrees (clockwise on screen)."""
        pts = apply_affine(self.vertices, rotation_matrix(center, angle, self.tensor))
        self.tensor = pts.flatten(-2)

    def project_(self, homography_matrix: Tensor | np.ndarray) -> None:
        """Apply a (3, 3) homography to every vertex."""
        matrix = torch.as_tensor(homography_matrix)
        if matrix.shape != (3, 3):
            raise ValueError(f'homography_matrix must be (3, 3), but got {tuple(matrix.shape)}')
        self.tensor = apply_affine(self.vertices, matrix).flatten(-2)

    def rescale_(self, scale_factor: tuple[float, float]) -> None:
        sx, sy = check_pair(scale_factor, 'scale_factor')
        self.tensor = self.tensor * self.tensor.new_tensor([sx, sy]).repeat(4)

    def resize_(self, scale_factor: tuple[float, float]) -> None:
        """Scale about the vertex mean; only isotropic factors (as mmrotate)."""
        sx, sy = check_pair(scale_factor, 'scale_factor')
        if sx != sy:
            raise ValueError(
                'QuadriBoxes.resize_ only supports equal factors, to keep the '
                f'shape, but got {scale_factor}'
            )
        pts = self.vertices
        ctr = pts.mean(dim=-2, keepdim=True)
        self.tensor = ((pts - ctr) * sx + ctr).flatten(-2)

    def is_inside(
        self, img_shape: tuple[int, int], all_inside: bool = False, allowed_border: int = 0
    ) -> BoolTensor:
        """Whether the vertex means lie in the image extended by ``allowed_border``
        (centres only, as mmrotate)."""
        img_h, img_w = img_shape
        c = self.centers
        return (
            (c[..., 0] <= img_w + allowed_border)
            & (c[..., 1] <= img_h + allowed_border)
            & (c[..., 0] >= -allowed_border)
            & (c[..., 1] >= -allowed_border)
        )

    def find_inside_points(
        self, points: Tensor, is_aligned: bool = False, eps: float = 0.01
    ) -> BoolTensor:
        """Points strictly on the same side of all 4 edges, with margin ``eps`` on the edge
        cross products (mmrotate's rule): (P, N), or (N,) when aligned."""
        boxes = self.tensor
        if boxes.dim() != 2:
            raise ValueError('find_inside_points needs boxes of shape (N, 8)')
        corners = boxes.reshape(-1, 4, 2)
        nxt = torch.roll(corners, -1, dims=1)
        x1, y1 = corners.unbind(dim=2)
        x2, y2 = nxt.unbind(dim=2)
        px, py = points[:, 0:1], points[:, 1:2]
        if not is_aligned:
            px, py = px[:, None], py[:, None]
            x1, y1, x2, y2 = x1[None], y1[None], x2[None], y2[None]
        elif boxes.size(0) != points.size(0):
            raise ValueError('is_aligned=True needs as many points as boxes')
        values = (x1 - px) * (y2 - py) - (y1 - py) * (x2 - px)
        return (values >= eps).all(dim=-1) | (values <= -eps).all(dim=-1)

    @staticmethod
    def overlaps(
        boxes1: BaseBoxes,
        boxes2: BaseBoxes,
        mode: str = 'iou',
        is_aligned: bool = False,
        eps: float = 1e-6,
    ) -> Tensor:
        """Not implemented (as mmrotate): convert to 'rbox' and use its ``overlaps``."""
        raise NotImplementedError(
            'QuadriBoxes.overlaps is not implemented; use '
            'RotatedBoxes.overlaps on boxes converted to rbox'
        )

    @staticmethod
    def from_instance_masks(masks) -> 'QuadriBoxes':
        """Corners of the minimum-area rectangles (le90, rbox2qbox order) of the masks;
        empty masks give zeros. See :mod:`.mask_points` for accepted inputs."""
        rows = []
        for pts in mask_point_sets(masks):
            if len(pts) == 0:
                rows.append(torch.zeros(8, dtype=torch.float64))
                continue
            rbox = min_area_rect(torch.from_numpy(convex_hull(pts)), 'le90')
            rows.append(rbox_corners(rbox).flatten())
        if not rows:
            return QuadriBoxes(torch.zeros(0, 8))
        return QuadriBoxes(torch.stack(rows).float())
