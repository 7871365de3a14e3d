from .data_preprocessor import BatchSyncRandomResize, DetDataPreprocessor

__all__ = ['DetDataPreprocessor', 'BatchSyncRandomResize']
from .yolow_data_preprocessor import (  # noqa: E402
    YOLOv5DetDataPreprocessor,
    YOLOWDetDataPreprocessor,
)

__all__ += ['YOLOWDetDataPreprocessor', 'YOLOv5DetDataPreprocessor']
