from .rotated_yolox_head import RotatedYOLOXHead

__all__ = ['RotatedYOLOXHead']
