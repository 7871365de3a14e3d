from .csp_layer import CSPLayer, DarknetBottleneck
from .ema import ExpMomentumEMA
from .spp_bottleneck import SPPBottleneck

__all__ = ['CSPLayer', 'DarknetBottleneck', 'SPPBottleneck', 'ExpMomentumEMA']
from .init_cfg import YOLOX_CONV_INIT  # noqa: E402

__all__ += ['YOLOX_CONV_INIT']
