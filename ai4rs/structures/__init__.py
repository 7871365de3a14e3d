from .bbox import (
    BaseBoxes,
    HorizontalBoxes,
    QuadriBoxes,
    RotatedBoxes,
    get_box_type,
    register_box,
    register_box_converter,
)
from .det_data_sample import DetDataSample, OptSampleList, SampleList

__all__ = [
    'DetDataSample',
    'SampleList',
    'OptSampleList',
    'BaseBoxes',
    'HorizontalBoxes',
    'RotatedBoxes',
    'QuadriBoxes',
    'get_box_type',
    'register_box',
    'register_box_converter',
]

from .mask import PolygonMasks  # noqa: E402

__all__ += ['PolygonMasks']
