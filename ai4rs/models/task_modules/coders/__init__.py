from .angle_coder import PseudoAngleCoder
from .distance_angle_point_coder import (
    DistanceAnglePointCoder,
    equivalent_rbox_nearest,
    rbox2distance,
)
from .distance_point_bbox_coder import DistancePointBBoxCoder, bbox2distance, distance2bbox

__all__ = ['PseudoAngleCoder']
__all__ += ['DistancePointBBoxCoder', 'bbox2distance', 'distance2bbox']
__all__ += ['DistanceAnglePointCoder', 'equivalent_rbox_nearest', 'rbox2distance']
