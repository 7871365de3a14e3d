from .rotated_yolox_head import RotatedYOLOXHead
from .yolo_world_head import (
    BNContrastiveHead,
    ContrastiveHead,
    YOLOWorldHead,
    YOLOWorldHeadModule,
)

__all__ = ['RotatedYOLOXHead']
__all__ += ['YOLOWorldHead', 'YOLOWorldHeadModule', 'ContrastiveHead', 'BNContrastiveHead']
