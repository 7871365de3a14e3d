"""Overlaps of horizontal boxes (mmdet's ``bbox_overlaps``) and of rotated boxes."""

import torch
from torch import Tensor

from ai4rs.ops import box_iou_rotated

from .box_helpers import get_box_tensor
from .geometry import hbox2rbox, rbox2hbox


def bbox_overlaps(
    bboxes1: Tensor, bboxes2: Tensor, mode: str = 'iou', is_aligned: bool = False, eps: float = 1e-6
) -> Tensor:
    """IoU, IoF or GIoU of horizontal boxes (mmdet semantics).

    Args:
        bboxes1 (Tensor): (..., M, 4) boxes ``(x1, y1, x2, y2)`` or empty.
        bboxes2 (Tensor): (..., N, 4) boxes or empty; batch dims must match ``bboxes1``.
        mode (str): 'iou', 'iof' (over the area of ``bboxes1``) or 'giou'.
        is_aligned (bool): Pairwise along M = N instead of all pairs.
        eps (float): Lower bound of the denominators.

    Returns:
        Tensor: (..., M, N), or (..., M) when aligned.
    """
    if mode not in ('iou', 'iof', 'giou'):
        raise ValueError(f"mode must be 'iou', 'iof' or 'giou', but got {mode!r}")
    if not (bboxes1.size(-1) == 4 or bboxes1.size(0) == 0):
        raise ValueError(f'bboxes1 must have shape (..., 4), but got {tuple(bboxes1.shape)}')
    if not (bboxes2.size(-1) == 4 or bboxes2.size(0) == 0):
        raise ValueError(f'bboxes2 must have shape (..., 4), but got {tuple(bboxes2.shape)}')
    if bboxes1.shape[:-2] != bboxes2.shape[:-2]:
        raise ValueError('bboxes1 and bboxes2 must have the same batch dimensions')
    batch_shape = bboxes1.shape[:-2]
    rows, cols = bboxes1.size(-2), bboxes2.size(-2)
    if is_aligned and rows != cols:
        raise ValueError(f'is_aligned=True needs as many bboxes1 as bboxes2, got {rows}, {cols}')
    if rows * cols == 0:
        return bboxes1.new_zeros(batch_shape + ((rows,) if is_aligned else (rows, cols)))
    area1 = (bboxes1[..., 2] - bboxes1[..., 0]) * (bboxes1[..., 3] - bboxes1[..., 1])
    area2 = (bboxes2[..., 2] - bboxes2[..., 0]) * (bboxes2[..., 3] - bboxes2[..., 1])
    if is_aligned:
        b1, b2, a1, a2 = bboxes1, bboxes2, area1, area2
    else:
        b1, b2 = bboxes1[..., :, None, :], bboxes2[..., None, :, :]
        a1, a2 = area1[..., :, None], area2[..., None, :]
    lt = torch.maximum(b1[..., :2], b2[..., :2])
    rb = torch.minimum(b1[..., 2:], b2[..., 2:])
    overlap = (rb - lt).clamp(min=0).prod(dim=-1)
    union = a1 + a2 - overlap if mode in ('iou', 'giou') else a1
    eps_t = union.new_tensor([eps])
    ious = overlap / torch.max(union, eps_t)
    if mode in ('iou', 'iof'):
        return ious
    enclosed = (
        (torch.maximum(b1[..., 2:], b2[..., 2:]) - torch.minimum(b1[..., :2], b2[..., :2]))
        .clamp(min=0)
        .prod(dim=-1)
    )
    enclosed = torch.max(enclosed, eps_t)
    return ious - (enclosed - torch.max(union, eps_t)) / enclosed


def rbbox_overlaps(
    bboxes1: Tensor, bboxes2: Tensor, mode: str = 'iou', is_aligned: bool = False
) -> Tensor:
    """Exact IoU / IoF of rotated boxes (mmrotate's ``rbbox_overlaps``).

    Unlike mmrotate, no clamping of sizes (to 1e-3) or centres (to 1e7) is needed or done,
    and gradients are kept: the computation is :func:`ai4rs.ops.box_iou_rotated`.

    Args:
        bboxes1 (Tensor): (M, 5) ``(cx, cy, w, h, t)`` or empty.
        bboxes2 (Tensor): (N, 5) or empty.
        mode (str): 'iou' or 'iof'.
        is_aligned (bool): Pairwise along M = N.

    Returns:
        Tensor: (M, N), or (M,) when aligned.
    """
    return box_iou_rotated(bboxes1, bboxes2, mode=mode, aligned=is_aligned)


def fake_rbbox_overlaps(bboxes1, bboxes2, mode: str = 'iou', is_aligned: bool = False) -> Tensor:
    """Overlaps of the axis-aligned boxes enclosing rotated boxes (mmrotate's helper).

    Args:
        bboxes1 (RotatedBoxes | Tensor): (M, 5) rotated boxes.
        bboxes2 (RotatedBoxes | Tensor): (N, 5) rotated boxes.
        mode (str): 'iou' or 'iof'.
        is_aligned (bool): Pairwise along M = N.
    """
    t1, t2 = get_box_tensor(bboxes1), get_box_tensor(bboxes2)
    return rbbox_overlaps(hbox2rbox(rbox2hbox(t1)), hbox2rbox(rbox2hbox(t2)), mode, is_aligned)
