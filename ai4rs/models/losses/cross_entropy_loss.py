"""Cross-entropy losses: softmax over classes, or per-class sigmoid (soft targets allowed)."""

import torch.nn.functional as F
from torch import Tensor, nn

from ai4rs.registry import MODELS

from .utils import check_reduction, weight_reduce_loss


def cross_entropy(
    pred: Tensor,
    label: Tensor,
    weight: Tensor | None = None,
    reduction: str = 'mean',
    avg_factor: float | None = None,
    class_weight: list | None = None,
    ignore_index: int = -100,
    avg_non_ignore: bool = False,
) -> Tensor:
    """Softmax cross entropy.

    Args:
        pred (Tensor): (N, C) logits.
        label (Tensor): (N,) class indices.
        weight (Tensor, optional): (N,) sample weights.
    """
    cw = None if class_weight is None else pred.new_tensor(class_weight)
    loss = F.cross_entropy(pred, label, weight=cw, reduction='none', ignore_index=ignore_index)
    if avg_factor is None and avg_non_ignore and reduction == 'mean':
        avg_factor = label.numel() - (label == ignore_index).sum().item()
    if weight is not None:
        weight = weight.float()
    return weight_reduce_loss(loss, weight=weight, reduction=reduction, avg_factor=avg_factor)


def binary_cross_entropy(
    pred: Tensor,
    label: Tensor,
    weight: Tensor | None = None,
    reduction: str = 'mean',
    avg_factor: float | None = None,
    class_weight: list | None = None,
    ignore_index: int = -100,
    avg_non_ignore: bool = False,
) -> Tensor:
    """Sigmoid binary cross entropy per element.

    Args:
        pred (Tensor): (N, C) logits.
        label (Tensor): (N, C) targets in [0, 1] (soft targets allowed), or
            (N,) class indices, expanded to one-hot (index C or
            ``ignore_index`` gives an all-zero / ignored row).
        weight (Tensor, optional): (N,) or (N, C) weights.
    """
    if pred.dim() != label.dim():
        label, weight, valid = _expand_onehot_labels(label, weight, pred.size(-1), ignore_index)
    else:
        valid = ((label >= 0) & (label != ignore_index)).float()
        weight = valid if weight is None else weight * valid
    if avg_factor is None and avg_non_ignore and reduction == 'mean':
        avg_factor = valid.sum().item()
    if weight is not None:
        weight = weight.float()
    pos_weight = None if class_weight is None else pred.new_tensor(class_weight)
    loss = F.binary_cross_entropy_with_logits(
        pred, label.float(), pos_weight=pos_weight, reduction='none'
    )
    return weight_reduce_loss(loss, weight, reduction=reduction, avg_factor=avg_factor)


def _expand_onehot_labels(
    labels: Tensor, label_weights: Tensor | None, num_classes: int, ignore_index: int
):
    bin_labels = labels.new_zeros((labels.size(0), num_classes))
    valid = (labels >= 0) & (labels != ignore_index)
    inds = valid & (labels < num_classes)
    bin_labels[inds.nonzero().squeeze(1), labels[inds]] = 1
    valid_mask = valid.view(-1, 1).expand(labels.size(0), num_classes).float()
    if label_weights is None:
        weights = valid_mask
    else:
        weights = label_weights.view(-1, 1).expand(labels.size(0), num_classes) * valid_mask
    return bin_labels, weights, valid_mask


@MODELS.register_module()
class CrossEntropyLoss(nn.Module):
    """Cross-entropy loss (mmdet's ``CrossEntropyLoss``).

    Args:
        use_sigmoid (bool): per-class sigmoid BCE instead of softmax CE.
        use_mask (bool): mask cross entropy; not supported (raises).
        reduction (str): 'none', 'mean' or 'sum'. Defaults to 'mean'.
        class_weight (list[float], optional): per-class weights.
        ignore_index (int, optional): label to ignore. Defaults to -100.
        loss_weight (float): multiplier. Defaults to 1.0.
        avg_non_ignore (bool): average over non-ignored elements only.

    ``forward(cls_score, label, weight=None, avg_factor=None,
    reduction_override=None)`` returns a scalar (or element-wise for 'none').
    """

    def __init__(
        self,
        use_sigmoid: bool = False,
        use_mask: bool = False,
        reduction: str = 'mean',
        class_weight: list | None = None,
        ignore_index: int | None = None,
        loss_weight: float = 1.0,
        avg_non_ignore: bool = False,
    ) -> None:
        super().__init__()
        if use_mask:
            raise NotImplementedError('CrossEntropyLoss: use_mask=True is not supported in ai4rs')
        self.use_sigmoid = use_sigmoid
        self.use_mask = use_mask
        self.reduction = check_reduction(reduction, 'CrossEntropyLoss')
        self.loss_weight = loss_weight
        self.class_weight = class_weight
        self.ignore_index = ignore_index
        self.avg_non_ignore = avg_non_ignore
        self.cls_criterion = binary_cross_entropy if use_sigmoid else cross_entropy

    def extra_repr(self) -> str:
        return f'use_sigmoid={self.use_sigmoid}, avg_non_ignore={self.avg_non_ignore}'

    def forward(
        self,
        cls_score: Tensor,
        label: Tensor,
        weight: Tensor | None = None,
        avg_factor: float | None = None,
        reduction_override: str | None = None,
        ignore_index: int | None = None,
        **kwargs,
    ) -> Tensor:
        reduction = check_reduction(reduction_override or self.reduction, 'CrossEntropyLoss')
        if ignore_index is None:
            ignore_index = self.ignore_index if self.ignore_index is not None else -100
        loss = self.cls_criterion(
            cls_score,
            label,
            weight,
            reduction=reduction,
            avg_factor=avg_factor,
            class_weight=self.class_weight,
            ignore_index=ignore_index,
            avg_non_ignore=self.avg_non_ignore,
            **kwargs,
        )
        return self.loss_weight * loss
