"""IoU-family overlaps of aligned horizontal boxes and the IoU loss of YOLOv5/v8 (mmyolo).

:func:`bbox_overlaps` is the pure element-wise function (IoU, GIoU, CIoU, SIoU of box ``i`` of
``pred`` with box ``i`` of ``target``, broadcasting over leading dimensions); :class:`IoULoss`
is ``loss_weight * reduce(weight * (1 - overlap))``. Formulas and eps placement follow mmyolo
0.6.0, so values match upstream to the last bit for the same dtype.

Not to be confused with :func:`ai4rs.structures.bbox.bbox_overlaps` (mmdet's pairwise IoU /
IoF / GIoU matrix), which has another signature.
"""

import math

import torch
from torch import Tensor, nn

from ai4rs.registry import MODELS
from ai4rs.structures.bbox import bbox_cxcywh_to_xyxy

from .utils import check_reduction, weight_reduce_loss

IOU_MODES = ('iou', 'ciou', 'giou', 'siou')
BBOX_FORMATS = ('xyxy', 'xywh')


def bbox_overlaps(
    pred: Tensor,
    target: Tensor,
    iou_mode: str = 'ciou',
    bbox_format: str = 'xywh',
    siou_theta: float = 4.0,
    eps: float = 1e-7,
) -> Tensor:
    """Element-wise IoU / GIoU / CIoU / SIoU of two broadcastable sets of boxes.

    CIoU = IoU - rho^2 / c^2 - alpha * v with ``v = 4 / pi^2 (atan(w2 / h2) - atan(w1 / h1))^2``
    and ``alpha = v / (v - IoU + 1 + eps)`` (YOLOv5's alpha, computed without gradient);
    ``rho`` is the distance of the centres and ``c`` the diagonal of the enclosing box.
    GIoU = IoU - (C - U) / C. SIoU = IoU - (distance cost + shape cost) / 2
    (https://arxiv.org/abs/2205.12740). ``eps`` is added to the union, to the heights used in
    the aspect term, to ``c^2`` and to the enclosing area, as in mmyolo.

    Args:
        pred (Tensor): (..., 4) predicted boxes, (x1, y1, x2, y2) or (cx, cy, w, h).
        target (Tensor): (..., 4) target boxes in the same format; broadcastable with ``pred``.
        iou_mode (str): 'iou', 'ciou', 'giou' or 'siou'. Defaults to 'ciou'.
        bbox_format (str): 'xyxy' or 'xywh' (centre, size). Defaults to 'xywh'.
        siou_theta (float): exponent of the SIoU shape cost. Defaults to 4.0.
        eps (float): stabiliser. Defaults to 1e-7.

    Returns:
        Tensor: (...) overlaps, clamped to [-1, 1].
    """
    if iou_mode not in IOU_MODES:
        raise ValueError(f'bbox_overlaps: iou_mode must be one of {IOU_MODES}, got {iou_mode!r}')
    if bbox_format not in BBOX_FORMATS:
        raise ValueError(
            f'bbox_overlaps: bbox_format must be one of {BBOX_FORMATS}, got {bbox_format!r}'
        )
    if pred.size(-1) != 4 or target.size(-1) != 4:
        raise ValueError(
            f'bbox_overlaps: boxes must have 4 columns, got {tuple(pred.shape)} '
            f'and {tuple(target.shape)}'
        )
    if bbox_format == 'xywh':
        pred = bbox_cxcywh_to_xyxy(pred)
        target = bbox_cxcywh_to_xyxy(target)

    p_x1, p_y1, p_x2, p_y2 = pred.unbind(-1)
    t_x1, t_y1, t_x2, t_y2 = target.unbind(-1)

    overlap = (torch.min(p_x2, t_x2) - torch.max(p_x1, t_x1)).clamp(0) * (
        torch.min(p_y2, t_y2) - torch.max(p_y1, t_y1)
    ).clamp(0)
    w1, h1 = p_x2 - p_x1, p_y2 - p_y1
    w2, h2 = t_x2 - t_x1, t_y2 - t_y1
    union = (w1 * h1) + (w2 * h2) - overlap + eps
    h1 = p_y2 - p_y1 + eps
    h2 = t_y2 - t_y1 + eps
    ious = overlap / union

    enclose_wh = (
        torch.max(pred[..., 2:], target[..., 2:]) - torch.min(pred[..., :2], target[..., :2])
    ).clamp(min=0)
    enclose_w, enclose_h = enclose_wh[..., 0], enclose_wh[..., 1]

    if iou_mode == 'ciou':
        diag2 = enclose_w**2 + enclose_h**2 + eps
        rho2 = ((t_x1 + t_x2) - (p_x1 + p_x2)) ** 2 / 4 + ((t_y1 + t_y2) - (p_y1 + p_y2)) ** 2 / 4
        v = (4 / (math.pi**2)) * torch.pow(torch.atan(w2 / h2) - torch.atan(w1 / h1), 2)
        with torch.no_grad():
            alpha = v / (v - ious + (1 + eps))
        ious = ious - ((rho2 / diag2) + (alpha * v))
    elif iou_mode == 'giou':
        convex_area = enclose_w * enclose_h + eps
        ious = ious - (convex_area - union) / convex_area
    elif iou_mode == 'siou':
        ious = ious - _siou_penalty(
            p_x1,
            p_y1,
            p_x2,
            p_y2,
            t_x1,
            t_y1,
            t_x2,
            t_y2,
            w1,
            w2,
            h1,
            h2,
            enclose_w,
            enclose_h,
            siou_theta,
            eps,
        )
    return ious.clamp(min=-1.0, max=1.0)


def _siou_penalty(
    p_x1,
    p_y1,
    p_x2,
    p_y2,
    t_x1,
    t_y1,
    t_x2,
    t_y2,
    w1,
    w2,
    h1,
    h2,
    enclose_w,
    enclose_h,
    theta: float,
    eps: float,
) -> Tensor:
    """(distance cost + shape cost) / 2 of SIoU; ``h1``/``h2`` already include ``eps``."""
    sigma_cw = (t_x1 + t_x2) / 2 - (p_x1 + p_x2) / 2 + eps
    sigma_ch = (t_y1 + t_y2) / 2 - (p_y1 + p_y2) / 2 + eps
    sigma = torch.pow(sigma_cw**2 + sigma_ch**2, 0.5)
    sin_alpha = torch.abs(sigma_ch) / sigma
    sin_beta = torch.abs(sigma_cw) / sigma
    sin_alpha = torch.where(sin_alpha <= math.sin(math.pi / 4), sin_alpha, sin_beta)
    angle_cost = torch.cos(torch.arcsin(sin_alpha) * 2 - math.pi / 2)
    rho_x = (sigma_cw / enclose_w) ** 2
    rho_y = (sigma_ch / enclose_h) ** 2
    gamma = 2 - angle_cost
    distance_cost = (1 - torch.exp(-1 * gamma * rho_x)) + (1 - torch.exp(-1 * gamma * rho_y))
    omega_w = torch.abs(w1 - w2) / torch.max(w1, w2)
    omega_h = torch.abs(h1 - h2) / torch.max(h1, h2)
    shape_cost = torch.pow(1 - torch.exp(-1 * omega_w), theta) + torch.pow(
        1 - torch.exp(-1 * omega_h), theta
    )
    return (distance_cost + shape_cost) * 0.5


@MODELS.register_module()
class IoULoss(nn.Module):
    """``loss_weight * reduce(weight * (1 - overlap))`` for aligned boxes (mmyolo's ``IoULoss``).

    Args:
        iou_mode (str): 'ciou', 'giou' or 'siou'. Defaults to 'ciou'.
        bbox_format (str): 'xywh' or 'xyxy'. Defaults to 'xywh'.
        eps (float): stabiliser of :func:`bbox_overlaps`. Defaults to 1e-7.
        reduction (str): 'none', 'mean' or 'sum'. Defaults to 'mean'.
        loss_weight (float): multiplier. Defaults to 1.0.
        return_iou (bool): also return the (n,) overlaps. Defaults to True.

    ``forward(pred, target, weight=None, avg_factor=None, reduction_override=None)``: ``pred``
    and ``target`` are (n, 4); ``weight`` is (n,) or (n, k) (averaged over its last
    dimension). When no weight is positive the result is ``(pred * weight).sum()`` (a zero
    that keeps the graph) and no overlap is returned, as upstream.
    """

    def __init__(
        self,
        iou_mode: str = 'ciou',
        bbox_format: str = 'xywh',
        eps: float = 1e-7,
        reduction: str = 'mean',
        loss_weight: float = 1.0,
        return_iou: bool = True,
    ) -> None:
        super().__init__()
        if bbox_format not in BBOX_FORMATS:
            raise ValueError(
                f'IoULoss: bbox_format must be one of {BBOX_FORMATS}, got {bbox_format!r}'
            )
        if iou_mode not in ('ciou', 'siou', 'giou'):
            raise ValueError(
                f"IoULoss: iou_mode must be 'ciou', 'siou' or 'giou', got {iou_mode!r}"
            )
        self.iou_mode = iou_mode
        self.bbox_format = bbox_format
        self.eps = eps
        self.reduction = check_reduction(reduction, 'IoULoss')
        self.loss_weight = loss_weight
        self.return_iou = return_iou

    def forward(
        self,
        pred: Tensor,
        target: Tensor,
        weight: Tensor | None = None,
        avg_factor: float | None = None,
        reduction_override: str | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        if weight is not None and not torch.any(weight > 0):
            if pred.dim() == weight.dim() + 1:
                weight = weight.unsqueeze(1)
            return (pred * weight).sum()
        reduction = check_reduction(reduction_override or self.reduction, 'IoULoss')
        if weight is not None and weight.dim() > 1:
            weight = weight.mean(-1)
        iou = bbox_overlaps(
            pred, target, iou_mode=self.iou_mode, bbox_format=self.bbox_format, eps=self.eps
        )
        loss = self.loss_weight * weight_reduce_loss(1.0 - iou, weight, reduction, avg_factor)
        if self.return_iou:
            return loss, iou
        return loss
