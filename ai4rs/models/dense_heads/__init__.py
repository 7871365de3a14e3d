from .rotated_head_mixin import RotatedHeadMixin
from .rotated_yolo_world_head import RotatedYOLOWorldHead, RotatedYOLOWorldHeadModule
from .rotated_yolox_head import RotatedYOLOXHead
from .yolo_world_head import (
    BNContrastiveHead,
    ContrastiveHead,
    YOLOWorldHead,
    YOLOWorldHeadModule,
)

__all__ = ['RotatedHeadMixin', 'RotatedYOLOXHead']
__all__ += ['YOLOWorldHead', 'YOLOWorldHeadModule', 'ContrastiveHead', 'BNContrastiveHead']
__all__ += ['RotatedYOLOWorldHead', 'RotatedYOLOWorldHeadModule']
from .rep_yolo_world_head import (  # noqa: E402
    RepBNContrastiveHead,
    RepContrastiveHead,
    RepYOLOWorldHeadModule,
)

__all__ += ['RepBNContrastiveHead', 'RepContrastiveHead', 'RepYOLOWorldHeadModule']
