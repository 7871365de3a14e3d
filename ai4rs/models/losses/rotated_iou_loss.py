"""IoU loss for rotated boxes on the differentiable rotated IoU (always fp32)."""

import warnings

import torch
from torch import Tensor, nn

from ai4rs.ops import box_iou_rotated
from ai4rs.registry import MODELS

from .utils import check_reduction, weighted_loss

IOU_LOSS_MODES = ('linear', 'square', 'log')


@weighted_loss
def rotated_iou_loss(pred: Tensor, target: Tensor, mode: str = 'log', eps: float = 1e-6) -> Tensor:
    """Element-wise IoU loss of aligned rotated boxes.

    The IoU is computed in float32 with autocast disabled (half precision
    gives NaNs, mmrotate #888), clamped to ``eps`` from below, and turned into
    ``1 - IoU`` ('linear'), ``1 - IoU**2`` ('square') or ``-log(IoU)`` ('log').

    Args:
        pred (Tensor): (N, 5) rboxes (cx, cy, w, h, t).
        target (Tensor): (N, 5) rboxes.

    Returns:
        Tensor: (N,) float32 losses.
    """
    if mode not in IOU_LOSS_MODES:
        raise ValueError(f'rotated_iou_loss: mode must be one of {IOU_LOSS_MODES}, got {mode!r}')
    with torch.autocast(device_type=pred.device.type, enabled=False):
        ious = box_iou_rotated(pred.float(), target.float(), aligned=True).clamp(min=eps)
        if mode == 'linear':
            return 1 - ious
        if mode == 'square':
            return 1 - ious**2
        return -ious.log()


@MODELS.register_module()
class RotatedIoULoss(nn.Module):
    """Rotated IoU loss (mmrotate's ``RotatedIoULoss``).

    Args:
        linear (bool): deprecated; ``mode='linear'``.
        eps (float): lower clamp of the IoU. Defaults to 1e-6.
        reduction (str): 'none', 'mean' or 'sum'. Defaults to 'mean'.
        loss_weight (float): multiplier. Defaults to 1.0.
        mode (str): 'linear', 'square' or 'log'. Defaults to 'log'.

    ``forward(pred (N, 5), target (N, 5), weight=None (N,) or (N, 5),
    avg_factor=None, reduction_override=None)``.
    """

    def __init__(
        self,
        linear: bool = False,
        eps: float = 1e-6,
        reduction: str = 'mean',
        loss_weight: float = 1.0,
        mode: str = 'log',
    ) -> None:
        super().__init__()
        if mode not in IOU_LOSS_MODES:
            raise ValueError(f'RotatedIoULoss: mode must be one of {IOU_LOSS_MODES}, got {mode!r}')
        if linear:
            warnings.warn('RotatedIoULoss: linear=True is deprecated, use mode="linear"')
            mode = 'linear'
        self.mode = mode
        self.linear = linear
        self.eps = eps
        self.reduction = check_reduction(reduction, 'RotatedIoULoss')
        self.loss_weight = loss_weight

    def forward(
        self,
        pred: Tensor,
        target: Tensor,
        weight: Tensor | None = None,
        avg_factor: float | None = None,
        reduction_override: str | None = None,
        **kwargs,
    ) -> Tensor:
        reduction = check_reduction(reduction_override or self.reduction, 'RotatedIoULoss')
        if weight is not None and not torch.any(weight > 0) and reduction != 'none':
            if pred.dim() == weight.dim() + 1:
                weight = weight.unsqueeze(1)
            return (pred * weight).sum()
        if weight is not None and weight.dim() > 1:
            if weight.shape != pred.shape:
                raise ValueError(
                    f'RotatedIoULoss: weight {tuple(weight.shape)} must be (N,) '
                    f'or match pred {tuple(pred.shape)}'
                )
            weight = weight.mean(-1)
        if pred.numel() == 0:
            return pred.sum() * 0
        return self.loss_weight * rotated_iou_loss(
            pred,
            target,
            weight,
            mode=self.mode,
            eps=self.eps,
            reduction=reduction,
            avg_factor=avg_factor,
        )
