from .angle_coder import PseudoAngleCoder

__all__ = ['PseudoAngleCoder']
