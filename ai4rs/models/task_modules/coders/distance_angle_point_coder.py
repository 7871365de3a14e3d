"""Point-to-edge distances plus an angle <-> rotated boxes (mmrotate's ``DistanceAnglePointCoder``).

Rotated boxes are ``(cx, cy, w, h, t)``, ``t`` in radians, clockwise in image coordinates
(y down): the box frame's x axis is ``(cos t, sin t)`` and its y axis ``(-sin t, cos t)``, i.e. a
vector ``o`` of the box frame is ``R(t) o`` in the image with ``R(t) = [[cos, -sin], [sin, cos]]``.
Distances ``(left, top, right, bottom)`` are measured in the box frame from a point to the four
edges.
"""

import math

import torch
from torch import Tensor

from ai4rs.registry import TASK_UTILS
from ai4rs.structures.bbox import ANGLE_VERSIONS, distance2obb


def _check_last_dim(name: str, tensor: Tensor, size: int, what: str) -> None:
    if not isinstance(tensor, Tensor):
        raise TypeError(
            f'DistanceAnglePointCoder: {name} must be a torch.Tensor, but got {type(tensor)}'
        )
    if tensor.dim() == 0 or tensor.size(-1) != size:
        raise ValueError(
            f'DistanceAnglePointCoder: {name} must have shape (..., {size}) {what}, '
            f'but got {tuple(tensor.shape)}'
        )


def _check_broadcast(*named: tuple[str, Tensor]) -> None:
    """Raise naming all shapes when the leading dims (all but the last) do not broadcast."""
    try:
        torch.broadcast_shapes(*(t.shape[:-1] for _, t in named))
    except RuntimeError:
        shapes = ', '.join(f'{name} {tuple(t.shape)}' for name, t in named)
        raise ValueError(
            f'DistanceAnglePointCoder: leading dimensions do not broadcast: {shapes}'
        ) from None


def rbox2distance(
    points: Tensor, rboxes: Tensor, max_dis: float | None = None, eps: float = 0.1
) -> Tensor:
    """Distances from points to the four edges of rotated boxes, in each box's own frame.

    With ``o = (ox, oy) = R(-t) (p - c)`` the point in the box frame:
    ``left = w/2 + ox``, ``top = h/2 + oy``, ``right = w/2 - ox``, ``bottom = h/2 - oy``.
    A point inside the box has four positive distances.

    Args:
        points (Tensor): (..., 2) points (x, y).
        rboxes (Tensor): (..., 5) boxes (cx, cy, w, h, t); leading dims broadcast with
            ``points``.
        max_dis (float, optional): clamp the distances to ``[0, max_dis - eps]``.
        eps (float): keeps clamped distances strictly below ``max_dis``.

    Returns:
        Tensor: (..., 4) distances (left, top, right, bottom).
    """
    d = points[..., :2] - rboxes[..., :2]
    cos, sin = torch.cos(rboxes[..., 4]), torch.sin(rboxes[..., 4])
    ox = d[..., 0] * cos + d[..., 1] * sin
    oy = d[..., 1] * cos - d[..., 0] * sin
    hw, hh = rboxes[..., 2] / 2, rboxes[..., 3] / 2
    dist = torch.stack([hw + ox, hh + oy, hw - ox, hh - oy], dim=-1)
    if max_dis is not None:
        dist = dist.clamp(min=0, max=max_dis - eps)
    return dist


def equivalent_rbox_nearest(rboxes: Tensor, ref_angle: Tensor) -> Tensor:
    """The same rectangles, re-expressed with the angle nearest to ``ref_angle``.

    A rectangle ``(c, w, h, t)`` is also ``(c, w, h, t + k pi)`` and ``(c, h, w, t + pi/2 + k pi)``
    for every integer ``k``: all its representations are ``t_k = t + k pi/2`` with ``w`` and ``h``
    swapped when ``k`` is odd. This picks ``k = round((ref - t) / (pi/2))``, so that
    ``|t_k - ref| <= pi/4`` (an exact tie at ``pi/4`` rounds half to even). Used to express a
    ground truth in the frame of a predicted angle (e.g. for DFL distance targets), where the
    regular form (e.g. ``le90``) may differ from the prediction by about ``pi/2`` or ``pi``.

    Args:
        rboxes (Tensor): (..., 5) boxes (cx, cy, w, h, t).
        ref_angle (Tensor): (...) reference angles in radians; broadcasts with
            ``rboxes[..., 0]``.

    Returns:
        Tensor: (..., 5) boxes whose angle is within ``pi/4`` of ``ref_angle``; the angle is not
        wrapped into any range.
    """
    if not isinstance(rboxes, Tensor) or rboxes.dim() == 0 or rboxes.size(-1) != 5:
        shape = tuple(rboxes.shape) if isinstance(rboxes, Tensor) else type(rboxes)
        raise ValueError(f'equivalent_rbox_nearest: rboxes must be (..., 5), but got {shape}')
    ref_angle = torch.as_tensor(ref_angle, dtype=rboxes.dtype, device=rboxes.device)
    t = rboxes[..., 4]
    k = torch.round((ref_angle - t) / (math.pi / 2))
    odd = (k.remainder(2) == 1)[..., None]
    wh = rboxes[..., 2:4]
    wh = torch.where(odd, wh.flip(-1), wh)
    ctr = rboxes[..., :2].expand(*k.shape, 2)
    return torch.cat([ctr, wh.expand(*k.shape, 2), (t + k * (math.pi / 2))[..., None]], dim=-1)


@TASK_UTILS.register_module()
class DistanceAnglePointCoder:
    """Encode rotated boxes as distances (left, top, right, bottom) from a point, in the box frame.

    The angle is predicted separately (by an angle branch); :meth:`decode` takes it as an input,
    :meth:`encode` only produces the four distances in the frame of the ground truth's angle.

    Args:
        clip_border (bool): kept for config compatibility with mmrotate; rotated boxes are never
            clipped (see :meth:`decode`). Defaults to True.
        angle_version (str): one of ``ANGLE_VERSIONS``; the decoded angle is wrapped into its
            range. Defaults to ``'le90'``.
    """

    encode_size = 4

    def __init__(self, clip_border: bool = True, angle_version: str = 'le90') -> None:
        if angle_version not in ANGLE_VERSIONS:
            raise ValueError(
                f'DistanceAnglePointCoder: angle_version must be one of {ANGLE_VERSIONS}, '
                f'but got {angle_version!r}'
            )
        self.clip_border = clip_border
        self.angle_version = angle_version

    def encode(
        self, points: Tensor, gt_bboxes: Tensor, max_dis: float | None = None, eps: float = 0.1
    ) -> Tensor:
        """Distances of points to the edges of rotated boxes (see :func:`rbox2distance`).

        Args:
            points (Tensor): (..., 2) points (x, y).
            gt_bboxes (Tensor): (..., 5) boxes (cx, cy, w, h, t); leading dims broadcast
                with ``points``.
            max_dis (float, optional): clamp to ``[0, max_dis - eps]``.
            eps (float): see :func:`rbox2distance`. Defaults to 0.1.

        Returns:
            Tensor: (..., 4) distances (left, top, right, bottom).
        """
        _check_last_dim('points', points, 2, '(x, y)')
        _check_last_dim('gt_bboxes', gt_bboxes, 5, '(cx, cy, w, h, t)')
        _check_broadcast(('points', points), ('gt_bboxes', gt_bboxes))
        return rbox2distance(points, gt_bboxes, max_dis, eps)

    def decode(
        self, points: Tensor, distance: Tensor, angle: Tensor, max_shape: object = None
    ) -> Tensor:
        """Rotated boxes from points, distances in the box frame and angles.

        ``w = l + r``, ``h = t + b``; the centre is ``p + R(angle) ((r - l)/2, (b - t)/2)``; the
        returned angle is ``norm_angle(angle, angle_version)``, which only wraps the angle into
        the version's range (``le90``: ``[-pi/2, pi/2)``, by a multiple of pi) and does NOT swap
        ``w`` and ``h``: the box may have ``w < h`` even for ``le90`` (the same rectangle, since a
        rotation by pi maps a rectangle onto itself).

        Args:
            points (Tensor): (..., 2) points (x, y), e.g. (P, 2).
            distance (Tensor): (..., 4) distances (left, top, right, bottom), e.g. (B, P, 4).
            angle (Tensor): (..., 1) angles in radians, e.g. (B, P, 1).
            max_shape: unused: rotated boxes are not clipped to the image (clipping a rotated
                box does not give a rotated box). Kept for mmrotate's signature.

        Returns:
            Tensor: (..., 5) boxes (cx, cy, w, h, t), the broadcast shape of the inputs.
        """
        _check_last_dim('points', points, 2, '(x, y)')
        _check_last_dim('distance', distance, 4, '(left, top, right, bottom)')
        _check_last_dim('angle', angle, 1, '(angle in radians)')
        _check_broadcast(('points', points), ('distance', distance), ('angle', angle))
        shape = torch.broadcast_shapes(points.shape[:-1], distance.shape[:-1], angle.shape[:-1])
        dist_angle = torch.cat([distance.expand(*shape, 4), angle.expand(*shape, 1)], dim=-1)
        return distance2obb(points, dist_angle, self.angle_version)
