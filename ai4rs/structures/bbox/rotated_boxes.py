"""Rotated boxes (cx, cy, w, h, t): mmrotate 1.x ``RotatedBoxes``, registered as 'rbox'."""

import math

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
from .bbox_overlaps import rbbox_overlaps
from .geometry import ANGLE_PRESETS, min_area_rect, rbox_corners, regularize_rboxes_by
from .mask_points import convex_hull, mask_point_sets


@register_box('rbox')
class RotatedBoxes(BaseBoxes):
    """Rotated boxes, (..., 5) as ``(cx, cy, w, h, t)``.

    ``t`` is in radians, clockwise in image coordinates (x right, y down): the box is the
    horizontal box ``(cx, cy, w, h)`` rotated clockwise on screen by ``t`` about its centre.

    Args:
        data (Tensor | np.ndarray | Sequence): (..., 5) box data.
        dtype (torch.dtype, optional): Cast to this dtype.
        device (str | torch.device, optional): Move to this device.
        clone (bool): Copy the data. Defaults to True.
    """

    box_dim = 5

    def regularize_boxes(
        self, pattern: str | None = None, width_longer: bool = True, start_angle: float = -90
    ) -> Tensor:
        """Give every box its unique representation, in place, and return the tensor.

        Args:
            pattern (str, optional): 'oc' (``t`` in [-90, 0) degrees), 'le90' (``w >= h``,
                ``t`` in [-90, 90)) or 'le135' (``w >= h``, ``t`` in [-45, 135)); overrides
                the two arguments below.
            width_longer (bool): Make ``w`` the longer side (swap and add 90 degrees when
                not ``w > h``); otherwise swap when the wrapped angle is >= start + 90.
            start_angle (float): Start of the angle range in degrees.

        Returns:
            Tensor: the regularised (..., 5) tensor (also stored in ``self.tensor``).
        """
        if pattern is not None:
            if pattern not in ANGLE_PRESETS:
                raise ValueError(f"pattern must be 'oc', 'le90' or 'le135', but got {pattern!r}")
            width_longer, start_angle = ANGLE_PRESETS[pattern]
        self.tensor = regularize_rboxes_by(self.tensor, width_longer, start_angle)
        return self.tensor

    @property
    def centers(self) -> Tensor:
        return self.tensor[..., :2]

    @property
    def areas(self) -> Tensor:
        return self.tensor[..., 2] * self.tensor[..., 3]

    @property
    def widths(self) -> Tensor:
        return self.tensor[..., 2]

    @property
    def heights(self) -> Tensor:
        return self.tensor[..., 3]

    def flip_(self, img_shape: tuple[int, int], direction: str = 'horizontal') -> None:
        """Flip in place: horizontal ``cx -> W - cx, t -> -t``; vertical ``cy -> H - cy,
        t -> -t``; diagonal both centre flips with ``t`` unchanged."""
        check_flip_direction(direction)
        b = self.tensor
        if direction in ('horizontal', 'diagonal'):
            b[..., 0] = img_shape[1] - b[..., 0]
        if direction in ('vertical', 'diagonal'):
            b[..., 1] = img_shape[0] - b[..., 1]
        if direction != 'diagonal':
            b[..., 4] = -b[..., 4]

    def translate_(self, distances: tuple[float, float]) -> None:
        dx, dy = check_pair(distances, 'distances')
        self.tensor = self.tensor + self.tensor.new_tensor([dx, dy, 0, 0, 0])

    def clip_(self, img_shape: tuple[int, int]) -> None:
        """Does nothing, silently: clipping a rotated box to the image is not a rotated box.

        As mmrotate, the boxes are left whole (objects cut by the border keep their full
        extent), but without mmrotate's ``UserWarning``: ``Resize`` and the other transforms
        clip by default (``clip_object_border=True``), so every rotated pipeline would warn
        from every dataloader worker for a behaviour that is the intended one.
        """

    def rotate_(self, center: tuple[float, float], angle: float) -> None:
        """Rotate about ``center`` by ``angle`` degrees (clockwise on screen): the centres
        rotate and ``t += angle`` (no angle wrapping, as mmrotate)."""
        b = self.tensor
        ctr = apply_affine(b[..., :2], rotation_matrix(center, angle, b))
        t = b[..., 4:5] + math.radians(angle)
        self.tensor = torch.cat([ctr, b[..., 2:4], t], dim=-1)

    def project_(self, homography_matrix: Tensor | np.ndarray) -> None:
        """Project the corners with a (3, 3) homography and take their minimum-area
        rectangle, regularised to 'le90' (mmrotate uses ``cv2.minAreaRect``'s angle
        range)."""
        matrix = torch.as_tensor(homography_matrix)
        if matrix.shape != (3, 3):
            raise ValueError(f'homography_matrix must be (3, 3), but got {tuple(matrix.shape)}')
        self.tensor = self.corner2rbox(apply_affine(self.rbox2corner(self.tensor), matrix))

    @staticmethod
    def rbox2corner(boxes: Tensor) -> Tensor:
        """(..., 5) -> (..., 4, 2): ``c+v1+v2, c+v1-v2, c-v1-v2, c-v1+v2`` with
        ``v1 = w/2 (cos t, sin t)``, ``v2 = h/2 (-sin t, cos t)``."""
        return rbox_corners(boxes)

    @staticmethod
    def corner2rbox(corners: Tensor, angle_version: str = 'le90') -> Tensor:
        """(..., K, 2) points -> (..., 5) minimum-area rectangles in ``angle_version``."""
        if corners.numel() == 0:
            return corners.new_zeros((*corners.shape[:-2], 5))
        return min_area_rect(corners, angle_version)

    def rescale_(self, scale_factor: tuple[float, float]) -> None:
        """Scale coordinates by ``(sx, sy)`` in place (mmrotate's rule).

        An anisotropic scale turns a rotated rectangle into a parallelogram; the result is
        the rectangle with the exact image of the height edge (direction and length,
        ``t' = atan2(sx sin t, sy cos t)``), the exact length of the image of the width
        edge ``w' = w sqrt((sx cos t)^2 + (sy sin t)^2)`` and the scaled centre. Isotropic
        scales are exact.
        """
        sx, sy = check_pair(scale_factor, 'scale_factor')
        b = self.tensor
        cos, sin = torch.cos(b[..., 4:5]), torch.sin(b[..., 4:5])
        ctr = b[..., :2] * b.new_tensor([sx, sy])
        w = b[..., 2:3] * torch.sqrt((sx * cos) ** 2 + (sy * sin) ** 2)
        h = b[..., 3:4] * torch.sqrt((sx * sin) ** 2 + (sy * cos) ** 2)
        t = torch.atan2(sx * sin, sy * cos)
        self.tensor = torch.cat([ctr, w, h, t], dim=-1)

    def resize_(self, scale_factor: tuple[float, float]) -> None:
        """Scale ``w`` by ``sx`` and ``h`` by ``sy`` about the centres, in place."""
        sx, sy = check_pair(scale_factor, 'scale_factor')
        self.tensor = self.tensor * self.tensor.new_tensor([1, 1, sx, sy, 1])

    def is_inside(
        self, img_shape: tuple[int, int], all_inside: bool = False, allowed_border: int = 0
    ) -> BoolTensor:
        """Whether box centres lie in ``[-border, W + border] x [-border, H + border]``
        (mmrotate checks centres only; ``all_inside`` is ignored, as upstream)."""
        img_h, img_w = img_shape
        b = self.tensor
        return (
            (b[..., 0] <= img_w + allowed_border)
            & (b[..., 1] <= img_h + allowed_border)
            & (b[..., 0] >= -allowed_border)
            & (b[..., 1] >= -allowed_border)
        )

    def find_inside_points(
        self, points: Tensor, is_aligned: bool = False, eps: float = 0.01
    ) -> BoolTensor:
        """Points at least ``eps`` inside the boxes (mmrotate's rule): (P, N), or (N,) when
        aligned."""
        boxes = self.tensor
        if boxes.dim() != 2:
            raise ValueError('find_inside_points needs boxes of shape (N, 5)')
        if not is_aligned:
            boxes, points = boxes[None], points[:, None]
        elif boxes.size(0) != points.size(0):
            raise ValueError('is_aligned=True needs as many points as boxes')
        cos, sin = torch.cos(boxes[..., 4]), torch.sin(boxes[..., 4])
        d = points - boxes[..., :2]
        u = d[..., 0] * cos + d[..., 1] * sin
        v = d[..., 1] * cos - d[..., 0] * sin
        return (u.abs() <= boxes[..., 2] / 2 - eps) & (v.abs() <= boxes[..., 3] / 2 - eps)

    @staticmethod
    def overlaps(
        boxes1: BaseBoxes,
        boxes2: BaseBoxes,
        mode: str = 'iou',
        is_aligned: bool = False,
        eps: float = 1e-6,
    ) -> Tensor:
        """Exact rotated IoU / IoF of the boxes converted to 'rbox'. ``eps`` is accepted
        for API compatibility and unused (the IoU is exact and never divides by zero)."""
        boxes1, boxes2 = boxes1.convert_to('rbox'), boxes2.convert_to('rbox')
        return rbbox_overlaps(boxes1.tensor, boxes2.tensor, mode=mode, is_aligned=is_aligned)

    @staticmethod
    def from_instance_masks(masks) -> 'RotatedBoxes':
        """Minimum-area rectangles (le90) of bitmap or polygon masks (pixel indices for
        bitmaps); empty masks give zeros. See :mod:`.mask_points` for accepted inputs."""
        rows = []
        for pts in mask_point_sets(masks):
            if len(pts) == 0:
                rows.append(torch.zeros(5, dtype=torch.float64))
                continue
            hull = torch.from_numpy(convex_hull(pts))
            rows.append(min_area_rect(hull, 'le90'))
        if not rows:
            return RotatedBoxes(torch.zeros(0, 5))
        return RotatedBoxes(torch.stack(rows).float())
