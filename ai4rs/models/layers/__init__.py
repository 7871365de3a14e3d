from .csp_layer import CSPLayer, DarknetBottleneck
from .ema import ExpMomentumEMA
from .spp_bottleneck import SPPBottleneck

__all__ = ['CSPLayer', 'DarknetBottleneck', 'SPPBottleneck', 'ExpMomentumEMA']
from .yolo_bricks import (  # noqa: E402
    CSPLayerWithTwoConv,
    EfficientCSPLayerWithTwoConv,
    ImagePoolingAttentionModule,
    MaxSigmoidAttnBlock,
    MaxSigmoidCSPLayerWithTwoConv,
    RepConvMaxSigmoidAttnBlock,
    RepConvMaxSigmoidCSPLayerWithTwoConv,
    SPPFBottleneck,
    VanillaSigmoidBlock,
    YOLOv8DarknetBottleneck,
    max_sigmoid_attention,
)

__all__ += [
    'CSPLayerWithTwoConv',
    'EfficientCSPLayerWithTwoConv',
    'ImagePoolingAttentionModule',
    'MaxSigmoidAttnBlock',
    'MaxSigmoidCSPLayerWithTwoConv',
    'RepConvMaxSigmoidAttnBlock',
    'RepConvMaxSigmoidCSPLayerWithTwoConv',
    'SPPFBottleneck',
    'VanillaSigmoidBlock',
    'YOLOv8DarknetBottleneck',
    'max_sigmoid_attention',
]
from .init_cfg import YOLOX_CONV_INIT  # noqa: E402

__all__ += ['YOLOX_CONV_INIT']
