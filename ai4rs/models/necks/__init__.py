from .yolox_pafpn import YOLOXPAFPN

__all__ = ['YOLOXPAFPN']
from .base_yolo_neck import BaseYOLONeck  # noqa: E402
from .yolo_world_pafpn import YOLOWorldDualPAFPN, YOLOWorldPAFPN  # noqa: E402
from .yolov5_pafpn import YOLOv5PAFPN  # noqa: E402
from .yolov8_pafpn import YOLOv8PAFPN  # noqa: E402

__all__ += ['BaseYOLONeck', 'YOLOv5PAFPN', 'YOLOv8PAFPN', 'YOLOWorldPAFPN', 'YOLOWorldDualPAFPN']
