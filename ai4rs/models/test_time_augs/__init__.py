from .det_tta import DetTTAModel, RotatedTTAModel, flip_frame_shape, undo_view_flip

__all__ = ['DetTTAModel', 'RotatedTTAModel', 'flip_frame_shape', 'undo_view_flip']
