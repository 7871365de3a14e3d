"""Data transforms (importing this package registers them in ``ai4rs.registry.TRANSFORMS``).

mmcv's own transforms (``LoadImageFromFile``...) are registered too, so configs can
name them without a scope.
"""
import mmcv.transforms  # noqa: F401  (registers LoadImageFromFile etc.)

from .box_type import ConvertBoxType
from .formatting import PackDetInputs
from .image_loading import LoadImageFromFile
from .loading import LoadAnnotations, LoadImageFromNDArray
from .transforms import (
    CachedMixUp,
    CachedMosaic,
    FilterAnnotations,
    Pad,
    RandomCrop,
    RandomFlip,
    RandomResize,
    RandomRotate,
    Resize,
    Rotate,
    YOLOXHSVRandomAug,
)

__all__ = [
    'LoadAnnotations', 'LoadImageFromNDArray', 'ConvertBoxType', 'Resize', 'RandomResize',
    'RandomFlip', 'Rotate', 'RandomRotate', 'RandomCrop', 'Pad', 'YOLOXHSVRandomAug',
    'CachedMosaic', 'CachedMixUp', 'FilterAnnotations', 'PackDetInputs'
]
__all__ += ['LoadImageFromFile']
