from .assign_result import AssignResult
from .iou2d_calculator import RBboxOverlaps2D, clamp_rboxes
from .rotated_sim_ota_assigner import RotatedSimOTAAssigner, onehot_bce_cost

__all__ = [
    'AssignResult', 'RBboxOverlaps2D', 'clamp_rboxes', 'RotatedSimOTAAssigner',
    'onehot_bce_cost'
]
