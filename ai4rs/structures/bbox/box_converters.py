"""Conversions between horizontal (hbox), rotated (rbox) and quadrilateral (qbox) boxes.

- hbox: (..., 4) ``(x1, y1, x2, y2)``.
- rbox: (..., 5) ``(cx, cy, w, h, t)``, ``t`` radians clockwise in image coordinates.
  Corners: with ``v1 = (w/2 cos t, w/2 sin t)`` and ``v2 = (-h/2 sin t, h/2 cos t)``, the
  points ``c + v1 + v2, c + v1 - v2, c - v1 - v2, c - v1 + v2`` in that order.
- qbox: (..., 8) ``(x1, y1, ..., x4, y4)``.

All functions are ``Tensor -> Tensor``, vectorised, differentiable where the math is, and
work on any device in float32 / float64. They are registered as box converters.
"""
import torch
from torch import Tensor

from .box_type import register_box_converter
from .horizontal_boxes import HorizontalBoxes
from .quadri_boxes import QuadriBoxes
from .rotated_boxes import RotatedBoxes
from .transforms import min_area_rect, rbox_corners


@register_box_converter(HorizontalBoxes, RotatedBoxes)
def hbox2rbox(boxes: Tensor) -> Tensor:
    """(..., 4) ``(x1, y1, x2, y2)`` -> (..., 5) ``(cx, cy, x2 - x1, y2 - y1, 0)``."""
    wh = boxes[..., 2:] - boxes[..., :2]
    ctr = (boxes[..., 2:] + boxes[..., :2]) / 2
    return torch.cat([ctr, wh, boxes.new_zeros(*boxes.shape[:-1], 1)], dim=-1)


@register_box_converter(HorizontalBoxes, QuadriBoxes)
def hbox2qbox(boxes: Tensor) -> Tensor:
    """(..., 4) -> (..., 8) corners ``(x1,y1), (x2,y1), (x2,y2), (x1,y2)``."""
    x1, y1, x2, y2 = torch.split(boxes, 1, dim=-1)
    return torch.cat([x1, y1, x2, y1, x2, y2, x1, y2], dim=-1)


@register_box_converter(RotatedBoxes, HorizontalBoxes)
def rbox2hbox(boxes: Tensor) -> Tensor:
    """(..., 5) -> (..., 4) enclosing axis-aligned box; half-extents
    ``(|w/2 cos t| + |h/2 sin t|, |w/2 sin t| + |h/2 cos t|)``."""
    ctr, w, h, t = torch.split(boxes, (2, 1, 1, 1), dim=-1)
    cos, sin = torch.cos(t), torch.sin(t)
    ext = torch.cat([(w / 2 * cos).abs() + (h / 2 * sin).abs(),
                     (w / 2 * sin).abs() + (h / 2 * cos).abs()], dim=-1)
    return torch.cat([ctr - ext, ctr + ext], dim=-1)


@register_box_converter(RotatedBoxes, QuadriBoxes)
def rbox2qbox(boxes: Tensor) -> Tensor:
    """(..., 5) -> (..., 8) corners in the documented order."""
    return rbox_corners(boxes).flatten(-2)


@register_box_converter(QuadriBoxes, HorizontalBoxes)
def qbox2hbox(boxes: Tensor) -> Tensor:
    """(..., 8) -> (..., 4): min / max of the corner coordinates."""
    pts = boxes.reshape(*boxes.shape[:-1], 4, 2)
    return torch.cat([pts.amin(dim=-2), pts.amax(dim=-2)], dim=-1)


@register_box_converter(QuadriBoxes, RotatedBoxes)
def qbox2rbox(boxes: Tensor, angle_version: str = 'le90') -> Tensor:
    """(..., 8) -> (..., 5): minimum-area rectangle enclosing the 4 points.

    Computed by :func:`min_area_rect` (exact rotating calipers over all point pairs,
    vectorised, any device) and regularised to ``angle_version`` ('le90' by default, also
    'le135', 'oc'). Unlike mmrotate, which calls ``cv2.minAreaRect`` per box and keeps
    OpenCV's angle range (which changed between OpenCV versions), the output convention is
    fixed. Non-rectangular quadrilaterals give their minimum-area enclosing rectangle.
    """
    return min_area_rect(boxes.reshape(*boxes.shape[:-1], 4, 2), angle_version)
