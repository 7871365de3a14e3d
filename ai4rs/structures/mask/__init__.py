"""Instance masks as polygons (mmdet's ``PolygonMasks``) and the polygon math behind them."""

from .structures import (
    PolygonMasks,
    boxes_of_points_inside,
    merge_polygon_segments,
    polygon_area,
    polygons_to_hboxes,
    resample_polygon,
    warp_polygon,
)

__all__ = [
    'PolygonMasks',
    'boxes_of_points_inside',
    'merge_polygon_segments',
    'polygon_area',
    'polygons_to_hboxes',
    'resample_polygon',
    'warp_polygon',
]
