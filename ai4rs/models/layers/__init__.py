from .csp_layer import CSPLayer, DarknetBottleneck
from .ema import ExpMomentumEMA
from .spp_bottleneck import SPPBottleneck

__all__ = ['CSPLayer', 'DarknetBottleneck', 'SPPBottleneck', 'ExpMomentumEMA']
