"""Pure tensor geometry of boxes: angle conventions, minimum-area rectangles, corners,
conversions between box formats, decoders. No box classes: this module imports nothing from
the package, so every other module of ``structures.bbox`` may import it.

Rotated boxes are ``(cx, cy, w, h, t)``, ``t`` in radians, clockwise in image coordinates
(y down). Angle versions (mmrotate's):

- ``'le90'``: ``t`` in ``[-pi/2, pi/2)`` and ``w >= h`` (the long edge is the width).
- ``'le135'``: ``t`` in ``[-pi/4, 3pi/4)`` and ``w >= h``.
- ``'oc'``: ``t`` in ``[-pi/2, 0)``, no constraint on ``w`` versus ``h``.
"""

import math

import numpy as np
import torch
from torch import Tensor

# The one table of angle versions: name -> (width_longer, start angle in degrees), the
# arguments of :func:`regularize_rboxes_by` (mmrotate's ``regularize_boxes`` presets).
ANGLE_PRESETS = {'oc': (False, -90.0), 'le90': (True, -90.0), 'le135': (True, -45.0)}
ANGLE_VERSIONS = tuple(ANGLE_PRESETS)


def _check_angle_version(angle_version: str, allowed=ANGLE_VERSIONS) -> None:
    if angle_version not in allowed:
        raise ValueError(f'angle_version must be one of {allowed}, but got {angle_version!r}')


def norm_angle(angle: Tensor | np.ndarray | float, angle_version: str):
    """Wrap angles into the range of an angle version, without swapping w and h.

    ``'le90'``: ``(a + pi/2) % pi - pi/2``; ``'le135'``: ``(a + pi/4) % pi - pi/4``;
    ``'oc'``: unchanged (as upstream); ``'r360'``: ``(a + pi) % 2pi - pi``.

    Args:
        angle (Tensor | ndarray | float): angles in radians, any shape.
        angle_version (str): 'oc', 'le90', 'le135' or 'r360'.
    """
    _check_angle_version(angle_version, ANGLE_VERSIONS + ('r360',))
    if angle_version == 'oc':
        return angle
    if angle_version == 'le90':
        return (angle + np.pi / 2) % np.pi - np.pi / 2
    if angle_version == 'le135':
        return (angle + np.pi / 4) % np.pi - np.pi / 4
    return (angle + np.pi) % (2 * np.pi) - np.pi


def _version_params(angle_version: str) -> tuple[bool, float]:
    _check_angle_version(angle_version)
    return ANGLE_PRESETS[angle_version]


def regularize_rboxes_by(
    rboxes: Tensor, width_longer: bool = True, start_angle: float = -90
) -> Tensor:
    """Give each rotated box its unique representation (mmrotate's ``regularize_boxes``).

    - ``width_longer``: when not ``w > h`` swap w and h and add pi/2; then wrap ``t`` into
      ``[start, start + pi)``.
    - otherwise: wrap ``t`` into ``[start, start + pi)``; when ``t >= start + pi/2`` swap w and
      h and subtract pi/2, giving ``[start, start + pi/2)``.

    Args:
        rboxes (Tensor): (..., 5) rotated boxes.
        width_longer (bool): See above.
        start_angle (float): Start of the angle range, in degrees.

    Returns:
        Tensor: (..., 5) regularised boxes (a new tensor).
    """
    start = start_angle / 180 * math.pi
    x, y, w, h, t = rboxes.unbind(dim=-1)
    if width_longer:
        longer = w > h
        w_, h_ = torch.where(longer, w, h), torch.where(longer, h, w)
        t = torch.where(longer, t, t + math.pi / 2)
        t = torch.remainder(t - start, math.pi) + start
    else:
        t = torch.remainder(t - start, math.pi)
        first = t < math.pi / 2
        w_, h_ = torch.where(first, w, h), torch.where(first, h, w)
        t = torch.where(first, t, t - math.pi / 2) + start
    return torch.stack([x, y, w_, h_, t], dim=-1)


def regularize_rboxes(rboxes: Tensor, angle_version: str = 'le90') -> Tensor:
    """Regularise rotated boxes (..., 5) to an angle version: 'le90', 'le135' or 'oc'.

    See the module docstring for the ranges; the rule is mmrotate's (``w > h`` is strict in
    the long-edge versions, so squares get ``t + pi/2`` wrapped).
    """
    width_longer, start = _version_params(angle_version)
    return regularize_rboxes_by(rboxes, width_longer, start)


def min_area_rect(points: Tensor, angle_version: str | None = 'le90') -> Tensor:
    """Minimum-area enclosing rectangle of small point sets, vectorised.

    The minimum-area rectangle of a point set has a side on an edge of the convex hull
    (rotating calipers). Every hull edge joins two of the points, so trying the direction of
    every pair of points and keeping the smallest bounding rectangle in that frame is exact,
    needs no explicit hull, and is a fixed-shape computation: for 4 points, 6 directions.
    Coincident points give no direction; if all points coincide the result has w = h = 0.

    Args:
        points (Tensor): (..., K, 2) points, K >= 1 (K = 4 for quadrilaterals).
        angle_version (str, optional): regularise the result to 'le90', 'le135' or 'oc';
            None returns the raw rectangle whose width lies along the chosen point pair.

    Returns:
        Tensor: (..., 5) rotated boxes ``(cx, cy, w, h, t)``.
    """
    if points.dim() < 2 or points.size(-1) != 2:
        raise ValueError(f'points must have shape (..., K, 2), but got {tuple(points.shape)}')
    dtype = points.dtype if points.dtype in (torch.float32, torch.float64) else torch.float32
    pts = points.to(dtype)
    batch_shape, k = pts.shape[:-2], pts.size(-2)
    if k == 0:
        raise ValueError('points must contain at least one point per set')
    pts = pts.reshape(-1, k, 2)
    origin = pts.mean(dim=1, keepdim=True)
    pts = pts - origin  # centred for precision with large coordinates
    ii, jj = torch.triu_indices(k, k, offset=1, device=pts.device)
    if ii.numel() == 0:
        ii = jj = torch.zeros(1, dtype=torch.long, device=pts.device)
    d = pts[:, jj] - pts[:, ii]  # (B, E, 2)
    length = torch.linalg.vector_norm(d, dim=-1)
    scale = pts.abs().amax(dim=(1, 2)).clamp(min=1)[:, None]
    ok = length > scale * torch.finfo(dtype).eps * 16
    u = torch.where(
        ok[..., None], d / torch.where(ok, length, 1.0)[..., None], d.new_tensor([1.0, 0.0])
    )
    v = torch.stack([-u[..., 1], u[..., 0]], dim=-1)
    pu = torch.einsum('bkc,bec->bek', pts, u)  # (B, E, K)
    pv = torch.einsum('bkc,bec->bek', pts, v)
    umin, umax = pu.amin(-1), pu.amax(-1)
    vmin, vmax = pv.amin(-1), pv.amax(-1)
    area = (umax - umin) * (vmax - vmin)
    area = torch.where(ok, area, torch.full_like(area, float('inf')))
    best = area.argmin(dim=1, keepdim=True)  # all-degenerate sets pick direction (1, 0)

    def pick(x):
        return x.gather(1, best).squeeze(1)

    ub, vb = pick_vec(u, best), pick_vec(v, best)
    cu, cv = (pick(umin) + pick(umax)) / 2, (pick(vmin) + pick(vmax)) / 2
    ctr = origin[:, 0] + ub * cu[:, None] + vb * cv[:, None]
    w, h = pick(umax) - pick(umin), pick(vmax) - pick(vmin)
    t = torch.atan2(ub[:, 1], ub[:, 0])
    rboxes = torch.stack([ctr[:, 0], ctr[:, 1], w, h, t], dim=-1)
    if angle_version is not None:
        rboxes = regularize_rboxes(rboxes, angle_version)
    return rboxes.reshape(*batch_shape, 5).to(points.dtype if points.is_floating_point() else dtype)


def pick_vec(vecs: Tensor, best: Tensor) -> Tensor:
    """Select ``vecs[b, best[b]]`` from (B, E, 2) with ``best`` (B, 1) -> (B, 2)."""
    return vecs.gather(1, best[..., None].expand(-1, 1, 2)).squeeze(1)


def rbox_corners(boxes: Tensor) -> Tensor:
    """(..., 5) rotated boxes -> (..., 4, 2) corners.

    With ``v1 = (w/2 cos t, w/2 sin t)`` and ``v2 = (-h/2 sin t, h/2 cos t)`` the corners are
    ``c + v1 + v2, c + v1 - v2, c - v1 - v2, c - v1 + v2`` (mmrotate's order).
    """
    ctr, w, h, t = torch.split(boxes, (2, 1, 1, 1), dim=-1)
    cos, sin = torch.cos(t), torch.sin(t)
    v1 = torch.cat([w / 2 * cos, w / 2 * sin], dim=-1)
    v2 = torch.cat([-h / 2 * sin, h / 2 * cos], dim=-1)
    return torch.stack([ctr + v1 + v2, ctr + v1 - v2, ctr - v1 - v2, ctr - v1 + v2], dim=-2)


def distance2obb(points: Tensor, distance: Tensor, angle_version: str = 'oc') -> Tensor:
    """Decode (left, top, right, bottom, angle) distances from points into rotated boxes.

    The distances are measured in the box frame; the centre offset ``((r - l)/2, (b - t)/2)``
    is rotated by the angle (clockwise, image coordinates) and added to the point. The
    angle is wrapped with :func:`norm_angle` (w and h are not swapped), as in mmrotate.

    Args:
        points (Tensor): (..., N, 2) points.
        distance (Tensor): (..., N, 5) distances to the 4 sides and the angle.
        angle_version (str): see :func:`norm_angle`.

    Returns:
        Tensor: (..., N, 5) rotated boxes.
    """
    dist, angle = distance.split([4, 1], dim=-1)
    cos, sin = torch.cos(angle), torch.sin(angle)
    wh = dist[..., :2] + dist[..., 2:]
    off = (dist[..., 2:] - dist[..., :2]) / 2
    off = torch.cat(
        [cos * off[..., :1] - sin * off[..., 1:], sin * off[..., :1] + cos * off[..., 1:]], dim=-1
    )
    return torch.cat([points[..., :2] + off, wh, norm_angle(angle, angle_version)], dim=-1)


def bbox_cxcywh_to_xyxy(bbox: Tensor) -> Tensor:
    """(..., 4) ``(cx, cy, w, h)`` -> ``(x1, y1, x2, y2)``."""
    ctr, wh = bbox.split((2, 2), dim=-1)
    return torch.cat([ctr - wh / 2, ctr + wh / 2], dim=-1)


def bbox_xyxy_to_cxcywh(bbox: Tensor) -> Tensor:
    """(..., 4) ``(x1, y1, x2, y2)`` -> ``(cx, cy, w, h)``."""
    xy1, xy2 = bbox.split((2, 2), dim=-1)
    return torch.cat([(xy1 + xy2) / 2, xy2 - xy1], dim=-1)


# ----------------------------------------------------------------- format conversions
# hbox (..., 4) (x1, y1, x2, y2); rbox (..., 5) (cx, cy, w, h, t); qbox (..., 8) corners.
# Registered as box converters in :mod:`.box_converters`.


def hbox2rbox(boxes: Tensor) -> Tensor:
    """(..., 4) ``(x1, y1, x2, y2)`` -> (..., 5) ``(cx, cy, x2 - x1, y2 - y1, 0)``."""
    wh = boxes[..., 2:] - boxes[..., :2]
    ctr = (boxes[..., 2:] + boxes[..., :2]) / 2
    return torch.cat([ctr, wh, boxes.new_zeros(*boxes.shape[:-1], 1)], dim=-1)


def hbox2qbox(boxes: Tensor) -> Tensor:
    """(..., 4) -> (..., 8) corners ``(x1,y1), (x2,y1), (x2,y2), (x1,y2)``."""
    x1, y1, x2, y2 = torch.split(boxes, 1, dim=-1)
    return torch.cat([x1, y1, x2, y1, x2, y2, x1, y2], dim=-1)


def rbox2hbox(boxes: Tensor) -> Tensor:
    """(..., 5) -> (..., 4) enclosing axis-aligned box; half-extents
    ``(|w/2 cos t| + |h/2 sin t|, |w/2 sin t| + |h/2 cos t|)``."""
    ctr, w, h, t = torch.split(boxes, (2, 1, 1, 1), dim=-1)
    cos, sin = torch.cos(t), torch.sin(t)
    ext = torch.cat(
        [(w / 2 * cos).abs() + (h / 2 * sin).abs(), (w / 2 * sin).abs() + (h / 2 * cos).abs()],
        dim=-1,
    )
    return torch.cat([ctr - ext, ctr + ext], dim=-1)


def rbox2qbox(boxes: Tensor) -> Tensor:
    """(..., 5) -> (..., 8) corners in the documented order."""
    return rbox_corners(boxes).flatten(-2)


def qbox2hbox(boxes: Tensor) -> Tensor:
    """(..., 8) -> (..., 4): min / max of the corner coordinates."""
    pts = boxes.reshape(*boxes.shape[:-1], 4, 2)
    return torch.cat([pts.amin(dim=-2), pts.amax(dim=-2)], dim=-1)


def qbox2rbox(boxes: Tensor, angle_version: str = 'le90') -> Tensor:
    """(..., 8) -> (..., 5): minimum-area rectangle enclosing the 4 points.

    Computed by :func:`min_area_rect` (exact rotating calipers over all point pairs,
    vectorised, any device) and regularised to ``angle_version`` ('le90' by default, also
    'le135', 'oc'). Unlike mmrotate, which calls ``cv2.minAreaRect`` per box and keeps
    OpenCV's angle range (which changed between OpenCV versions), the output convention is
    fixed. Non-rectangular quadrilaterals give their minimum-area enclosing rectangle.
    """
    return min_area_rect(boxes.reshape(*boxes.shape[:-1], 4, 2), angle_version)
