from .data_preprocessor import BatchSyncRandomResize, DetDataPreprocessor

__all__ = ['DetDataPreprocessor', 'BatchSyncRandomResize']
from .yolow_data_preprocessor import YOLOWDetDataPreprocessor  # noqa: E402

__all__ += ['YOLOWDetDataPreprocessor']
