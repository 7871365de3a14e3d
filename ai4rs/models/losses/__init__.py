from .cross_entropy_loss import CrossEntropyLoss, binary_cross_entropy, cross_entropy
from .gfocal_loss import DistributionFocalLoss, distribution_focal_loss
from .iou_loss import IoULoss, bbox_overlaps
from .rotated_iou_loss import RotatedIoULoss, rotated_iou_loss
from .smooth_l1_loss import L1Loss, l1_loss
from .utils import reduce_loss, weight_reduce_loss, weighted_loss

__all__ = [
    'CrossEntropyLoss',
    'binary_cross_entropy',
    'cross_entropy',
    'RotatedIoULoss',
    'rotated_iou_loss',
    'L1Loss',
    'l1_loss',
    'reduce_loss',
    'weight_reduce_loss',
    'weighted_loss',
]
__all__ += ['DistributionFocalLoss', 'distribution_focal_loss', 'IoULoss', 'bbox_overlaps']
