"""Geometric ops in pure PyTorch: rotated IoU, rotated / batched NMS, point-in-rotated-box.

No compiled extension and no ``mmcv.ops``: see each module for the method.
"""

from .box_iou_rotated import box_iou_rotated, rotated_box_intersection
from .cpu_tasks import set_cpu_threads
from .nms import batched_nms, nms, nms_rotated
from .points_in_rboxes import points_in_rboxes

__all__ = [
    'box_iou_rotated',
    'rotated_box_intersection',
    'nms',
    'nms_rotated',
    'batched_nms',
    'points_in_rboxes',
    'set_cpu_threads',
]
