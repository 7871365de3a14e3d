"""Which points lie strictly inside which rotated boxes (pure PyTorch)."""

import torch
from torch import Tensor

from .cpu_tasks import limited_cpu_threads
from .rbox_geometry import check_rboxes

# elements of the (points x boxes) block evaluated at once
_BLOCK = 1 << 22


def points_in_rboxes(points: Tensor, rboxes: Tensor) -> Tensor:
    """Strict point-in-rotated-box test.

    A point p is inside box (cx, cy, w, h, t) when its coordinates in the box frame,
    ``u = (p - c) . (cos t, sin t)`` and ``v = (p - c) . (-sin t, cos t)``, satisfy
    ``|u| < w / 2`` and ``|v| < h / 2``. Points on the boundary are outside; zero-size boxes
    contain no point.

    Args:
        points (Tensor): (P, 2) points ``(x, y)``.
        rboxes (Tensor): (N, 5) boxes ``(cx, cy, w, h, t)``, ``t`` in radians, clockwise.

    Returns:
        Tensor: (P, N) bool.
    """
    if not isinstance(points, Tensor):
        raise TypeError(f'points must be a torch.Tensor, but got {type(points)}')
    if points.numel() == 0:
        points = points.reshape(0, 2)
    if points.dim() != 2 or points.size(-1) != 2:
        raise ValueError(f'points must have shape (P, 2), but got {tuple(points.shape)}')
    rboxes = check_rboxes(rboxes, 'rboxes')
    dtype = torch.promote_types(points.dtype, rboxes.dtype)
    if dtype not in (torch.float32, torch.float64):
        dtype = torch.float32
    pts, boxes = points.to(dtype), rboxes.to(dtype)
    p, n = pts.size(0), boxes.size(0)
    out = torch.zeros(p, n, dtype=torch.bool, device=points.device)
    if p == 0 or n == 0:
        return out
    cos, sin = torch.cos(boxes[:, 4]), torch.sin(boxes[:, 4])
    hw, hh = boxes[:, 2] * 0.5, boxes[:, 3] * 0.5
    rows = max(1, _BLOCK // n)
    with limited_cpu_threads(points.device):
        for r0 in range(0, p, rows):
            d = pts[r0 : r0 + rows, None, :] - boxes[None, :, :2]
            u = d[..., 0] * cos + d[..., 1] * sin
            v = d[..., 1] * cos - d[..., 0] * sin
            out[r0 : r0 + rows] = (u.abs() < hw) & (v.abs() < hh)
    return out
