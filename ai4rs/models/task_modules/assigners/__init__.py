from .assign_result import AssignResult
from .batch_rotated_task_aligned_assigner import (
    BatchRotatedTaskAlignedAssigner,
    rotated_overlaps_on_pairs,
    select_candidates_in_rotated_gts,
)
from .batch_task_aligned_assigner import BatchTaskAlignedAssigner
from .iou2d_calculator import RBboxOverlaps2D, clamp_rboxes
from .rotated_sim_ota_assigner import RotatedSimOTAAssigner, onehot_bce_cost
from .tal_utils import select_candidates_in_gts, select_highest_overlaps, yolov6_iou_calculator

__all__ = [
    'AssignResult',
    'RBboxOverlaps2D',
    'clamp_rboxes',
    'RotatedSimOTAAssigner',
    'onehot_bce_cost',
]
__all__ += [
    'BatchTaskAlignedAssigner',
    'select_candidates_in_gts',
    'select_highest_overlaps',
    'yolov6_iou_calculator',
]
__all__ += [
    'BatchRotatedTaskAlignedAssigner',
    'rotated_overlaps_on_pairs',
    'select_candidates_in_rotated_gts',
]
