from .yolox_pafpn import YOLOXPAFPN

__all__ = ['YOLOXPAFPN']
