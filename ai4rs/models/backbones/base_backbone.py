"""What the CSPDarknet backbones share: a stem and stages run in order, some of them
returned, the first ones frozen (mmyolo's ``BaseBackbone`` behaviour)."""

from collections.abc import Sequence

from mmengine.model import BaseModule
from torch import Tensor

from ..utils.freeze import freeze_module, set_norm_eval


class StagedBackbone(BaseModule):
    """Base of backbones made of a stem and stages, named in ``self.layers`` in order
    (``'stem'``, ``'stage1'``, ...); a subclass builds them and appends their names.

    ``forward`` runs the layers in order and returns the outputs of the layers in
    ``out_indices`` (0: the stem). ``train`` keeps the stem and the first ``frozen_stages``
    stages frozen (eval mode, no gradients; -1 freezes nothing, 0 the stem only) and, with
    ``norm_eval``, every BatchNorm in eval mode. This class has no parameters of its own, so
    the state_dict keys are the subclass's.

    Args:
        num_layers (int): the stem and the stages.
        out_indices (Sequence[int]): layers to return, in [0, num_layers - 1].
        frozen_stages (int): in [-1, num_layers - 1].
        norm_eval (bool): keep every BatchNorm in eval mode while training.
        init_cfg (dict, optional): mmengine init config.

    Raises:
        ValueError: ``out_indices`` or ``frozen_stages`` out of range (the class is named).
    """

    #: arch name -> stage rows, set by each subclass
    arch_settings: dict[str, list] = {}

    def __init__(
        self,
        num_layers: int,
        out_indices: Sequence[int],
        frozen_stages: int,
        norm_eval: bool,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        if not set(out_indices).issubset(range(num_layers)):
            raise ValueError(
                f'{name}: out_indices {tuple(out_indices)} must lie in [0, {num_layers - 1}]'
            )
        if frozen_stages not in range(-1, num_layers):
            raise ValueError(
                f'{name}: frozen_stages must be in [-1, {num_layers - 1}], got {frozen_stages}'
            )
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.layers: list[str] = []

    @classmethod
    def select_arch(cls, arch: str) -> list:
        """A copy of ``cls.arch_settings[arch]``; a ValueError names the known archs."""
        if arch not in cls.arch_settings:
            raise ValueError(
                f'{cls.__name__}: arch must be one of {sorted(cls.arch_settings)}, got {arch!r}'
            )
        return [list(row) for row in cls.arch_settings[arch]]

    def _freeze_stages(self) -> None:
        for name in self.layers[: self.frozen_stages + 1]:
            freeze_module(getattr(self, name))

    def train(self, mode: bool = True):
        """Train mode, keeping frozen stages (and every BN with ``norm_eval``) in eval."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            set_norm_eval(self)
        return self

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """(B, C, H, W) -> the outputs of the layers in ``out_indices``, in layer order."""
        outs = []
        for i, name in enumerate(self.layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
