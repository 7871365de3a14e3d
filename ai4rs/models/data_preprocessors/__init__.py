from .data_preprocessor import BatchSyncRandomResize, DetDataPreprocessor, rescale_boxes

__all__ = ['DetDataPreprocessor', 'BatchSyncRandomResize', 'rescale_boxes']
