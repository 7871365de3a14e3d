"""Distribution Focal Loss (Generalized Focal Loss, https://arxiv.org/abs/2006.04388; mmdet's)."""

import torch.nn.functional as F
from torch import Tensor, nn

from ai4rs.registry import MODELS

from .utils import check_reduction, weighted_loss


@weighted_loss
def distribution_focal_loss(pred: Tensor, label: Tensor) -> Tensor:
    """Cross entropy against the two integer bins around a continuous target.

    For a target ``y`` with ``l = floor(y)``, ``r = l + 1``:
    ``loss = CE(pred, l) * (r - y) + CE(pred, r) * (y - l)``.

    Args:
        pred (Tensor): (N, n + 1) logits of the distribution over ``{0, ..., n}``.
        label (Tensor): (N,) targets in ``[0, n)`` (``r`` must be a valid bin).

    Returns:
        Tensor: (N,) loss (the wrapper adds ``weight``, ``reduction``, ``avg_factor``).
    """
    dis_left = label.long()
    dis_right = dis_left + 1
    weight_left = dis_right.float() - label
    weight_right = label - dis_left.float()
    return (
        F.cross_entropy(pred, dis_left, reduction='none') * weight_left
        + F.cross_entropy(pred, dis_right, reduction='none') * weight_right
    )


@MODELS.register_module()
class DistributionFocalLoss(nn.Module):
    """mmdet's ``DistributionFocalLoss``: ``loss_weight * distribution_focal_loss``.

    Args:
        reduction (str): 'none', 'mean' or 'sum'. Defaults to 'mean'.
        loss_weight (float): multiplier. Defaults to 1.0.

    ``forward(pred, target, weight=None, avg_factor=None, reduction_override=None)`` with
    ``pred`` (N, n + 1) logits, ``target`` (N,) continuous distances, ``weight`` (N,).
    """

    def __init__(self, reduction: str = 'mean', loss_weight: float = 1.0) -> None:
        super().__init__()
        self.reduction = check_reduction(reduction, 'DistributionFocalLoss')
        self.loss_weight = loss_weight

    def forward(
        self,
        pred: Tensor,
        target: Tensor,
        weight: Tensor | None = None,
        avg_factor: float | None = None,
        reduction_override: str | None = None,
    ) -> Tensor:
        reduction = check_reduction(reduction_override or self.reduction, 'DistributionFocalLoss')
        return self.loss_weight * distribution_focal_loss(
            pred, target, weight, reduction=reduction, avg_factor=avg_factor
        )
