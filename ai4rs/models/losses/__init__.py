from .cross_entropy_loss import CrossEntropyLoss, binary_cross_entropy, cross_entropy
from .rotated_iou_loss import RotatedIoULoss, rotated_iou_loss
from .smooth_l1_loss import L1Loss, l1_loss
from .utils import reduce_loss, weight_reduce_loss, weighted_loss

__all__ = [
    'CrossEntropyLoss', 'binary_cross_entropy', 'cross_entropy', 'RotatedIoULoss',
    'rotated_iou_loss', 'L1Loss', 'l1_loss', 'reduce_loss', 'weight_reduce_loss', 'weighted_loss'
]
