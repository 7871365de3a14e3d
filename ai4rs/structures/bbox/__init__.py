"""Box types (hbox, rbox, qbox), their registry, conversions and angle conventions.

Formats: hbox (..., 4) ``(x1, y1, x2, y2)``; rbox (..., 5) ``(cx, cy, w, h, t)`` with ``t``
in radians, clockwise in image coordinates (y down); qbox (..., 8) four corners.
"""

from .base_boxes import BaseBoxes
from .bbox_overlaps import bbox_overlaps, fake_rbbox_overlaps, rbbox_overlaps
from .box_converters import hbox2qbox, hbox2rbox, qbox2hbox, qbox2rbox, rbox2hbox, rbox2qbox
from .box_helpers import empty_box_as, get_box_tensor, get_box_wh, scale_boxes
from .box_type import (
    autocast_box_type,
    box_converters,
    box_types,
    boxes_from_tensor,
    convert_box_type,
    get_box_type,
    register_box,
    register_box_converter,
)
from .geometry import (
    ANGLE_PRESETS,
    ANGLE_VERSIONS,
    bbox_cxcywh_to_xyxy,
    bbox_xyxy_to_cxcywh,
    distance2obb,
    min_area_rect,
    norm_angle,
    rbox_corners,
    regularize_rboxes,
)
from .horizontal_boxes import HorizontalBoxes
from .quadri_boxes import QuadriBoxes
from .rotated_boxes import RotatedBoxes

__all__ = [
    'BaseBoxes',
    'HorizontalBoxes',
    'RotatedBoxes',
    'QuadriBoxes',
    'register_box',
    'register_box_converter',
    'get_box_type',
    'convert_box_type',
    'autocast_box_type',
    'box_types',
    'box_converters',
    'hbox2rbox',
    'hbox2qbox',
    'rbox2hbox',
    'rbox2qbox',
    'qbox2hbox',
    'qbox2rbox',
    'bbox_overlaps',
    'rbbox_overlaps',
    'fake_rbbox_overlaps',
    'norm_angle',
    'regularize_rboxes',
    'min_area_rect',
    'rbox_corners',
    'distance2obb',
    'bbox_cxcywh_to_xyxy',
    'bbox_xyxy_to_cxcywh',
    'get_box_tensor',
    'empty_box_as',
    'get_box_wh',
    'scale_boxes',
    'ANGLE_VERSIONS',
    'boxes_from_tensor',
    'ANGLE_PRESETS',
]
