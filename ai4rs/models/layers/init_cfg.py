"""Weight-initialisation configs shared by model parts (``init_cfg`` values)."""

import math

#: Kaiming-uniform init of every Conv2d, as in mmdet's YOLOX parts (CSPDarknet, YOLOXPAFPN,
#: the YOLOX heads): ``a = sqrt(5)``, fan-in, leaky-ReLU gain, uniform distribution.
YOLOX_CONV_INIT = dict(
    type='Kaiming',
    layer='Conv2d',
    a=math.sqrt(5),
    distribution='uniform',
    mode='fan_in',
    nonlinearity='leaky_relu',
)
