from .angle_coder import PseudoAngleCoder
from .distance_point_bbox_coder import DistancePointBBoxCoder, bbox2distance, distance2bbox

__all__ = ['PseudoAngleCoder']
__all__ += ['DistancePointBBoxCoder', 'bbox2distance', 'distance2bbox']
