"""Average BatchNorm statistics over processes before validation."""

from collections import OrderedDict

from mmengine import dist
from mmengine.hooks import Hook
from torch import nn

from ai4rs.registry import HOOKS


def get_norm_states(module: nn.Module) -> OrderedDict:
    """State (weight, bias, running stats, counters) of every norm layer, by full key."""
    states = OrderedDict()
    for name, child in module.named_modules():
        if isinstance(child, nn.modules.batchnorm._NormBase):
            for key, value in child.state_dict().items():
                states['.'.join(filter(None, (name, key)))] = value
    return states


@HOOKS.register_module()
class SyncNormHook(Hook):
    """Before each validation, replace every norm layer's floating-point state by
    its mean over processes (so that every rank evaluates the same model). No-op on
    one process."""

    def before_val_epoch(self, runner) -> None:
        if dist.get_world_size() == 1:
            return
        module = runner.model
        norm_states = get_norm_states(module)
        if len(norm_states) == 0:
            return
        # floating-point states (weights, biases, running statistics) are averaged;
        # the integer batch counters are left as they are. mmengine's all_reduce_dict
        # replaces the dict's values (it returns None).
        floats = {k: v for k, v in norm_states.items() if v.is_floating_point()}
        dist.all_reduce_dict(floats, op='mean')
        module.load_state_dict(floats, strict=False)
