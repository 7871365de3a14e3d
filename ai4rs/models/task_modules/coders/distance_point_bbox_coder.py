"""Point-to-edge distances <-> horizontal boxes (mmyolo's ``DistancePointBBoxCoder``)."""

from collections.abc import Sequence

import torch
from torch import Tensor

from ai4rs.registry import TASK_UTILS


def distance2bbox(
    points: Tensor,
    distance: Tensor,
    max_shape: Sequence[int] | Tensor | Sequence[Sequence[int]] | None = None,
) -> Tensor:
    """Boxes from a point and its distances to the four edges.

    Args:
        points (Tensor): (N, 2) or (B, N, 2) points (x, y).
        distance (Tensor): (N, 4) or (B, N, 4) distances (left, top, right, bottom).
        max_shape (optional): (H, W) (or (H, W, C)) to clip to, or one such shape per image
            of a batch; None does not clip.

    Returns:
        Tensor: (N, 4) or (B, N, 4) boxes (x1, y1, x2, y2).
    """
    x1 = points[..., 0] - distance[..., 0]
    y1 = points[..., 1] - distance[..., 1]
    x2 = points[..., 0] + distance[..., 2]
    y2 = points[..., 1] + distance[..., 3]
    bboxes = torch.stack([x1, y1, x2, y2], -1)
    if max_shape is None:
        return bboxes
    shape = torch.as_tensor(max_shape, device=bboxes.device)[..., :2].to(bboxes.dtype)
    if shape.dim() == 2:
        if bboxes.dim() != 3 or shape.size(0) != bboxes.size(0):
            raise ValueError(
                'distance2bbox: a max_shape per image needs (B, N, 4) boxes with the same B'
            )
    # (..., 4) upper bounds (W, H, W, H)
    upper = torch.cat([shape.flip(-1), shape.flip(-1)], dim=-1).unsqueeze(-2)
    return torch.minimum(bboxes.clamp(min=0), upper)


def bbox2distance(
    points: Tensor, bbox: Tensor, max_dis: float | None = None, eps: float = 0.1
) -> Tensor:
    """Distances from a point to the four edges of a box (inverse of :func:`distance2bbox`).

    Args:
        points (Tensor): (N, 2) or (B, N, 2) points (x, y).
        bbox (Tensor): (N, 4) or (B, N, 4) boxes (x1, y1, x2, y2).
        max_dis (float, optional): clamp the distances to ``[0, max_dis - eps]``.
        eps (float): keeps clamped distances strictly below ``max_dis``.

    Returns:
        Tensor: (N, 4) or (B, N, 4) distances (left, top, right, bottom).
    """
    left = points[..., 0] - bbox[..., 0]
    top = points[..., 1] - bbox[..., 1]
    right = bbox[..., 2] - points[..., 0]
    bottom = bbox[..., 3] - points[..., 1]
    if max_dis is not None:
        left = left.clamp(min=0, max=max_dis - eps)
        top = top.clamp(min=0, max=max_dis - eps)
        right = right.clamp(min=0, max=max_dis - eps)
        bottom = bottom.clamp(min=0, max=max_dis - eps)
    return torch.stack([left, top, right, bottom], -1)


@TASK_UTILS.register_module()
class DistancePointBBoxCoder:
    """Encode boxes (x1, y1, x2, y2) as distances (left, top, right, bottom) from a point.

    The mmyolo variant: :meth:`decode` multiplies the predicted distances by the stride of
    each point's level, :meth:`encode` clamps to ``[0, max_dis - eps]`` (DFL targets).

    Args:
        clip_border (bool): clip decoded boxes to ``max_shape`` when one is given.
            Defaults to True.
        use_box_type (bool): kept for config compatibility; decoded boxes are tensors.
    """

    encode_size = 4

    def __init__(self, clip_border: bool = True, use_box_type: bool = False) -> None:
        self.clip_border = clip_border
        self.use_box_type = use_box_type

    def encode(
        self, points: Tensor, gt_bboxes: Tensor, max_dis: float = 16.0, eps: float = 0.01
    ) -> Tensor:
        """(N, 2)/(B, N, 2) points and (N, 4)/(B, N, 4) boxes -> (.., N, 4) distances."""
        if points.size(-2) != gt_bboxes.size(-2) or points.size(-1) != 2 or gt_bboxes.size(-1) != 4:
            raise ValueError(
                f'DistancePointBBoxCoder.encode: points {tuple(points.shape)} and '
                f'boxes {tuple(gt_bboxes.shape)} do not match'
            )
        return bbox2distance(points, gt_bboxes, max_dis, eps)

    def decode(
        self,
        points: Tensor,
        pred_bboxes: Tensor,
        stride: Tensor,
        max_shape: Sequence[int] | Tensor | Sequence[Sequence[int]] | None = None,
    ) -> Tensor:
        """Boxes from distances in stride units.

        Args:
            points (Tensor): (N, 2) or (B, N, 2) points (x, y) in pixels.
            pred_bboxes (Tensor): (N, 4) or (B, N, 4) distances (left, top, right, bottom)
                in units of ``stride``.
            stride (Tensor): (N,) stride of each point.
            max_shape (optional): see :func:`distance2bbox`.

        Returns:
            Tensor: (N, 4) or (B, N, 4) boxes (x1, y1, x2, y2) in pixels.
        """
        if (
            points.size(-2) != pred_bboxes.size(-2)
            or points.size(-1) != 2
            or pred_bboxes.size(-1) != 4
        ):
            raise ValueError(
                f'DistancePointBBoxCoder.decode: points {tuple(points.shape)} and '
                f'distances {tuple(pred_bboxes.shape)} do not match'
            )
        if not self.clip_border:
            max_shape = None
        pred_bboxes = pred_bboxes * stride[:, None]
        return distance2bbox(points, pred_bboxes, max_shape)
