from .base import BaseDetector
from .single_stage import SingleStageDetector
from .yolox import YOLOX

__all__ = ['BaseDetector', 'SingleStageDetector', 'YOLOX']
from .yolo_world import YOLOWorldDetector  # noqa: E402

__all__ += ['YOLOWorldDetector']
from .simple_yolo_world import SimpleYOLOWorldDetector  # noqa: E402

__all__ += ['SimpleYOLOWorldDetector']
