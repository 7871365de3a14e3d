"""Reparameterized YOLO-World head: a fixed vocabulary folded into 1x1 convs.

Upstream YOLO-World b1b09f2 (``RepBNContrastiveHead``, ``RepYOLOWorldHeadModule``, same
names, arguments and state_dict keys). ``tools/model_converters/reparameterize_yolo_world.py``
folds K texts into the weights of a trained :class:`YOLOWorldHeadModule`:

- v2 (:class:`BNContrastiveHead`): ``<BN(x), l2(t_k)> * exp(s) + b`` is the 1x1 conv with
  weight ``l2(t_k) * exp(s)`` (K, D, 1, 1) and bias ``b`` on ``BN(x)``
  (:class:`RepBNContrastiveHead`);
- v1 (:class:`ContrastiveHead`): ``<l2(x), l2(t_k)> * exp(s) + b``, the same conv on
  ``l2(x)`` (:class:`RepContrastiveHead`, an ai4rs addition: upstream has no v1 Rep head).

The head then takes no text features: its ``forward`` accepts and ignores them, so
:class:`YOLOWorldHead`'s training and inference run unchanged with ``txt_feats=None``.
"""

from collections.abc import Sequence

import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor, nn

from ai4rs.registry import MODELS

from ..utils import multi_apply
from .yolo_world_head import YOLOWorldHeadModule


@MODELS.register_module()
class RepBNContrastiveHead(BaseModule):
    """:class:`BNContrastiveHead` with K texts baked in: ``conv(norm(x))``.

    Args:
        embed_dims (int): region embedding channels D (of ``norm``).
        num_guide_embeds (int): K, the number of baked texts (``conv`` output channels).
        norm_cfg (dict): norm layer config, e.g. ``dict(type='BN', momentum=0.03, eps=0.001)``.
        init_cfg (dict, optional): mmengine init config.

    Parameters: ``norm`` (D) and ``conv`` (Conv2d D -> K, 1x1, with bias).
    Shapes: x (B, D, H, W) -> (B, K, H, W) logits.
    """

    def __init__(
        self, embed_dims: int, num_guide_embeds: int, norm_cfg: dict, init_cfg: dict | None = None
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.norm = build_norm_layer(norm_cfg, embed_dims)[1]
        self.conv = nn.Conv2d(embed_dims, num_guide_embeds, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.norm(x))


@MODELS.register_module()
class RepContrastiveHead(BaseModule):
    """:class:`ContrastiveHead` with K texts baked in: ``conv(l2(x))`` (ai4rs; upstream
    reparameterizes only the BN head).

    Args:
        embed_dims (int): region embedding channels D.
        num_guide_embeds (int): K, the number of baked texts.
        init_cfg (dict, optional): mmengine init config.

    Parameters: ``conv`` (Conv2d D -> K, 1x1, with bias).
    Shapes: x (B, D, H, W) -> (B, K, H, W) logits.
    """

    def __init__(
        self, embed_dims: int, num_guide_embeds: int, init_cfg: dict | None = None
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.conv = nn.Conv2d(embed_dims, num_guide_embeds, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.normalize(x, dim=1, p=2))


@MODELS.register_module()
class RepYOLOWorldHeadModule(YOLOWorldHeadModule):
    """:class:`YOLOWorldHeadModule` whose ``cls_contrasts`` hold a baked vocabulary of
    ``num_guide`` texts (:class:`RepBNContrastiveHead`, or :class:`RepContrastiveHead` when
    ``use_bn_head`` is False). Keys: those of :class:`YOLOWorldHeadModule`, with
    ``cls_contrasts.{i}.conv.{weight,bias}`` in place of ``cls_contrasts.{i}.{bias,
    logit_scale}``.

    Args:
        *args, **kwargs: those of :class:`YOLOWorldHeadModule` (``num_classes``,
            ``in_channels``, ``widen_factor``, ...).
        embed_dims (int): region embedding channels D.
        num_guide (int): K, the number of baked texts (the logits' channels).
        use_bn_head (bool): v2 BN head (upstream's only Rep head). Defaults to True.
        freeze_all (bool): see :class:`YOLOWorldHeadModule`.

    ``forward(img_feats, txt_feats=None, txt_masks=None)``: the texts are ignored; returns
    what :class:`YOLOWorldHeadModule` returns, with (B, K, H, W) logits.
    """

    def __init__(
        self,
        *args,
        embed_dims: int,
        num_guide: int,
        use_bn_head: bool = True,
        freeze_all: bool = False,
        **kwargs,
    ) -> None:
        self.num_guide = num_guide
        kwargs.pop('use_einsum', None)
        super().__init__(
            *args,
            embed_dims=embed_dims,
            use_bn_head=use_bn_head,
            use_einsum=False,
            freeze_all=freeze_all,
            **kwargs,
        )

    def _init_layers(self) -> None:
        super()._init_layers()
        if self.use_bn_head:
            heads = [
                RepBNContrastiveHead(self.embed_dims, self.num_guide, self.norm_cfg)
                for _ in range(self.num_levels)
            ]
        else:
            heads = [
                RepContrastiveHead(self.embed_dims, self.num_guide) for _ in range(self.num_levels)
            ]
        self.cls_contrasts = nn.ModuleList(heads)
        if self.freeze_all:
            self._freeze_all()

    def forward(
        self,
        img_feats: Sequence[Tensor],
        txt_feats: Tensor | None = None,
        txt_masks: Tensor | None = None,
    ) -> tuple[list, ...]:
        """Per-level outputs of (B, in_i, H_i, W_i) maps; ``txt_feats`` and ``txt_masks``
        are ignored (the vocabulary is in the weights)."""
        if len(img_feats) != self.num_levels:
            raise ValueError(
                f'{type(self).__name__}: got {len(img_feats)} feature maps for '
                f'{self.num_levels} levels'
            )
        return multi_apply(self.forward_single, img_feats, *self.level_branches())

    def forward_single(
        self, img_feat: Tensor, cls_pred: nn.Module, reg_pred: nn.Module, cls_contrast: nn.Module
    ) -> tuple:
        """One level: (B, in, H, W) -> logits (B, K, H, W), distances (B, 4, H, W)
        [, distribution logits (B, H * W, 4, reg_max) in training]."""
        cls_logit = cls_contrast(cls_pred(img_feat))
        bbox_preds, bbox_dist_preds = self.expected_distances(img_feat, reg_pred)
        if self.training:
            return cls_logit, bbox_preds, bbox_dist_preds
        return cls_logit, bbox_preds
