"""L1 loss (mmdet's ``L1Loss``)."""

from torch import Tensor, nn

from ai4rs.registry import MODELS

from .utils import check_reduction, weighted_loss


@weighted_loss
def l1_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Element-wise |pred - target|; both (N, D)."""
    if target.numel() == 0:
        return pred.sum() * 0
    if pred.size() != target.size():
        raise ValueError(
            f'l1_loss: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape'
        )
    return (pred - target).abs()


@MODELS.register_module()
class L1Loss(nn.Module):
    """L1 loss.

    Args:
        reduction (str): 'none', 'mean' or 'sum'. Defaults to 'mean'.
        loss_weight (float): multiplier. Defaults to 1.0.

    ``forward(pred (N, D), target (N, D), weight=None, avg_factor=None,
    reduction_override=None)``.
    """

    def __init__(self, reduction: str = 'mean', loss_weight: float = 1.0) -> None:
        super().__init__()
        self.reduction = check_reduction(reduction, 'L1Loss')
        self.loss_weight = loss_weight

    def forward(
        self,
        pred: Tensor,
        target: Tensor,
        weight: Tensor | None = None,
        avg_factor: float | None = None,
        reduction_override: str | None = None,
    ) -> Tensor:
        reduction = check_reduction(reduction_override or self.reduction, 'L1Loss')
        if target.numel() == 0:
            return pred.sum() * 0
        return self.loss_weight * l1_loss(
            pred, target, weight, reduction=reduction, avg_factor=avg_factor
        )
