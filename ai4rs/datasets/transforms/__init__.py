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
    'LoadAnnotations',
    'LoadImageFromNDArray',
    'ConvertBoxType',
    'Resize',
    'RandomResize',
    'RandomFlip',
    'Rotate',
    'RandomRotate',
    'RandomCrop',
    'Pad',
    'YOLOXHSVRandomAug',
    'CachedMosaic',
    'CachedMixUp',
    'FilterAnnotations',
    'PackDetInputs',
]

from .mix_img_transforms import (  # noqa: E402
    Mosaic,
    MultiModalMosaic,
    YOLOv5MixUp,
    YOLOv5MultiModalMixUp,
)
from .text_transforms import LoadText, RandomLoadText  # noqa: E402
from .yolo_transforms import (  # noqa: E402
    Albu,
    LetterResize,
    RemoveDataElement,
    YOLOv5CopyPaste,
    YOLOv5HSVRandomAug,
    YOLOv5KeepRatioResize,
    YOLOv5RandomAffine,
)

__all__ += [
    'Mosaic',
    'MultiModalMosaic',
    'YOLOv5MixUp',
    'YOLOv5MultiModalMixUp',
    'LoadText',
    'RandomLoadText',
    'Albu',
    'LetterResize',
    'RemoveDataElement',
    'YOLOv5CopyPaste',
    'YOLOv5HSVRandomAug',
    'YOLOv5KeepRatioResize',
    'YOLOv5RandomAffine',
]
__all__ += ['LoadImageFromFile']
