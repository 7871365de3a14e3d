from .data_preprocessor import BatchSyncRandomResize, DetDataPreprocessor

__all__ = ['DetDataPreprocessor', 'BatchSyncRandomResize']
