"""Faster modules with the same outputs, for an inference model (no parameters change).

- :func:`swish_to_silu`: mmcv's ``Swish`` (``x * torch.sigmoid(x)``: two kernels and a
  temporary) replaced by ``nn.SiLU`` (one kernel), the same function.
- :func:`chain_spp_pools`: ``SPPBottleneck``'s parallel 5 / 9 / 13 max pools computed as a
  chain of 5x5 pools (exactly the same values).

Neither touches parameters or buffers: the state dict is unchanged.
"""

from mmcv.cnn.bricks.swish import Swish
from torch import nn

from ai4rs.models.layers.spp_bottleneck import SPPBottleneck


def swish_to_silu(model: nn.Module) -> int:
    """Replace every mmcv ``Swish`` submodule of ``model`` by ``nn.SiLU()``, in place;
    returns how many were replaced."""
    replaced = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is Swish:
                setattr(module, name, nn.SiLU())
                replaced += 1
    return replaced


def chain_spp_pools(model: nn.Module) -> int:
    """Make every ``SPPBottleneck`` of ``model`` whose kernel sizes allow it compute its pools
    as a chain (``SPPBottleneck.chain_pools``); returns how many do."""
    return sum(
        module.chain_pools() for module in model.modules() if isinstance(module, SPPBottleneck)
    )
