"""YOLO-World's optimizer constructor: mmengine-style ``paramwise_cfg`` plus
YOLOv5's batch-scaled weight decay."""

import logging

from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from torch import nn
from torch.nn import GroupNorm, LayerNorm
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from ai4rs.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS

from .paramwise_log import log_paramwise_lines
from .yolov5_optim_constructor import scale_weight_decay

NORM_TYPES = (_BatchNorm, _InstanceNorm, GroupNorm, LayerNorm)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class YOLOWv5OptimizerConstructor(DefaultOptimWrapperConstructor):
    """YOLO-World's optimizer wrapper constructor (``YOLOWv5OptimizerConstructor``).

    Every parameter gets its own parameter group, in the order of a recursive
    walk (a module's own parameters, then its children in definition order),
    frozen parameters included (as a group with no options of its own, so
    the group indices match upstream's). Options of a trainable parameter
    ``full_name`` (e.g. ``backbone.text_model.x.weight``), applied in this
    order, later rules overriding earlier ones:

    1. the longest key of ``paramwise_cfg['custom_keys']`` (ties:
       alphabetical) that is a substring of ``'<prefix>.<name>'``:
       ``lr = base_lr * lr_mult`` (default 1), ``weight_decay =
       base_wd * decay_mult`` (default 1), then every item of that key's dict
       is copied into the group as is (so ``dict(weight_decay=0.0)`` sets 0
       and ``lr_mult`` itself also appears in the group);
    2. ``bias_lr_mult``: ``lr = base_lr * bias_lr_mult`` for parameters named
       ``bias`` outside norm layers;
    3. the first that applies of ``norm_decay_mult`` (norm layers: batch,
       instance, group, layer norm), ``bias_decay_mult`` (``bias``),
       ``dwconv_decay_mult`` (conv with ``groups == in_channels``),
       ``flat_decay_mult`` (1-D parameters): ``weight_decay = base_wd * mult``.

    ``base_lr`` and ``base_wd`` are the optimizer config's ``lr`` and
    ``weight_decay`` *before* batch scaling (as upstream). If the optimizer
    config has ``batch_size_per_gpu``, it is removed and the optimizer's
    default ``weight_decay`` (the one for groups that set none) is multiplied
    by :func:`yolov5_weight_decay_scale` (16 per GPU x 8 GPUs against
    ``base_total_batch_size=64``: x2). So in YOLO-World's fine-tuning recipe
    (AdamW wd 0.05, ``custom_keys={'backbone.text_model': dict(lr_mult=0.01),
    'logit_scale': dict(weight_decay=0.0)}``) image-side weights, norms and
    biases decay with 0.1, ``logit_scale`` with 0, and a trainable text model
    with the unscaled 0.05 at 1% of the learning rate.

    With no ``paramwise_cfg`` left (besides ``base_total_batch_size``) the
    optimizer gets ``model.parameters()`` as a single group. ai4rs has no
    deformable convolution, so ``dcn_offset_lr_mult`` has no effect (as
    upstream without mmcv-full).

    Args:
        optim_wrapper_cfg (dict): optimizer wrapper config with an
            ``optimizer`` dict; ``type`` defaults to ``'OptimWrapper'``.
        paramwise_cfg (dict, optional): ``custom_keys``, ``bias_lr_mult``,
            ``bias_decay_mult``, ``norm_decay_mult``, ``dwconv_decay_mult``,
            ``flat_decay_mult``, ``bypass_duplicate`` (mmengine's meaning) and
            ``base_total_batch_size`` (default 64).
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None) -> None:
        paramwise_cfg = dict(paramwise_cfg) if paramwise_cfg is not None else None
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        self.base_total_batch_size = self.paramwise_cfg.pop('base_total_batch_size', 64)
        # 'name:key=value' of each option add_params sets, logged by __call__
        self._paramwise_lines: list[str] = []

    def _custom_options(self, full_name: str) -> dict:
        """Options from the longest matching custom key (empty if none)."""
        custom_keys = self.paramwise_cfg.get('custom_keys', {})
        for key in sorted(sorted(custom_keys), key=len, reverse=True):
            if key in full_name:
                settings = custom_keys[key]
                options = {'lr': self.base_lr * settings.get('lr_mult', 1.0)}
                if self.base_wd is not None:
                    options['weight_decay'] = self.base_wd * settings.get('decay_mult', 1.0)
                options.update(settings)
                return options
        return {}

    def _param_options(
        self, module: nn.Module, name: str, param: nn.Parameter, full_name: str
    ) -> dict:
        """lr / weight-decay options of the trainable parameter ``name`` of ``module``."""
        cfg = self.paramwise_cfg
        is_norm = isinstance(module, NORM_TYPES)
        is_dwconv = isinstance(module, nn.Conv2d) and module.in_channels == module.groups
        options = self._custom_options(full_name)
        if name == 'bias' and not is_norm and cfg.get('bias_lr_mult') is not None:
            options['lr'] = self.base_lr * cfg['bias_lr_mult']
        if self.base_wd is None:
            return options
        decay_rules = (
            (is_norm, 'norm_decay_mult'),
            (name == 'bias', 'bias_decay_mult'),
            (is_dwconv, 'dwconv_decay_mult'),
            (param.ndim == 1, 'flat_decay_mult'),
        )
        for applies, mult_key in decay_rules:
            if applies and cfg.get(mult_key) is not None:
                options['weight_decay'] = self.base_wd * cfg[mult_key]
                break
        return options

    def add_params(
        self,
        params: list[dict],
        module: nn.Module,
        prefix: str = '',
        is_dcn_module: int | float | None = None,
    ) -> None:
        """Append one group per parameter of ``module`` (recursively) to ``params``.

        Args:
            params (list[dict]): parameter groups, extended in place.
            module (nn.Module): the module whose parameters are added.
            prefix (str): the module's name in the model ('' for the model).
            is_dcn_module: unused (no deformable convolution in ai4rs); kept
                for mmengine's signature.
        """
        bypass_duplicate = self.paramwise_cfg.get('bypass_duplicate', False)
        for name, param in module.named_parameters(recurse=False):
            group = {'params': [param]}
            if bypass_duplicate and self._is_in(group, params):
                print_log(
                    f'{prefix} is duplicate. It is skipped since '
                    f'bypass_duplicate={bypass_duplicate}',
                    logger='current',
                    level=logging.WARNING,
                )
                continue
            if param.requires_grad:
                group.update(self._param_options(module, name, param, f'{prefix}.{name}'))
                full_name = f'{prefix}.{name}' if prefix else name
                self._paramwise_lines += [
                    f'{full_name}:{key}={value}' for key, value in group.items() if key != 'params'
                ]
            params.append(group)
        for child_name, child in module.named_children():
            child_prefix = f'{prefix}.{child_name}' if prefix else child_name
            self.add_params(params, child, prefix=child_prefix)

    def __call__(self, model: nn.Module) -> OptimWrapper:
        if hasattr(model, 'module'):
            model = model.module
        optim_wrapper_cfg = dict(self.optim_wrapper_cfg)
        optim_wrapper_cfg.setdefault('type', 'OptimWrapper')
        optimizer_cfg = scale_weight_decay(self.optimizer_cfg, self.base_total_batch_size)
        if self.paramwise_cfg:
            params: list[dict] = []
            self._paramwise_lines = []
            self.add_params(params, model)
            # each parameter's options at DEBUG, one summary at INFO
            log_paramwise_lines(self._paramwise_lines)
            optimizer_cfg['params'] = params
        else:
            optimizer_cfg['params'] = model.parameters()
        optimizer = OPTIMIZERS.build(optimizer_cfg)
        return OPTIM_WRAPPERS.build(optim_wrapper_cfg, default_args=dict(optimizer=optimizer))
