"""YOLO-World head: YOLOv8's decoupled head whose class branch scores regions against texts.

Per level ``i`` (upstream YOLO-World b1b09f2 + mmyolo 0.6.0, same names, keys and init):

- ``cls_preds[i]``: ConvModule 3x3 -> ConvModule 3x3 (``max(in[0], num_classes)`` channels)
  -> Conv2d 1x1 to ``embed_dims``: a region embedding per cell;
- ``cls_contrasts[i]``: the region-text logits ``<norm(region), l2(text)> * exp(logit_scale)
  + bias`` (:class:`BNContrastiveHead`, v2, BatchNorm on the regions; or
  :class:`ContrastiveHead`, v1, L2 on both);
- ``reg_preds[i]``: ConvModule 3x3 -> ConvModule 3x3 (``max(16, in[0] // 4, 4 * reg_max)``)
  -> Conv2d 1x1 to ``4 * reg_max``: a distribution over ``{0, ..., reg_max - 1}`` for each of
  the distances (left, top, right, bottom) in stride units; its expectation is the distance.

:class:`YOLOWorldHead` adds YOLOv8's training (task-aligned assignment, BCE + CIoU + DFL) and
inference (multi-label score filtering, class-aware NMS, letterbox undo).
"""

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_norm_layer
from mmengine.dist import get_dist_info
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor, nn

from ai4rs.registry import MODELS, TASK_UTILS
from ai4rs.structures.bbox import HorizontalBoxes

from ..utils import filter_scores_and_topk, gt_instances_preprocess, multi_apply
from ..utils.dense_head_utils import batched_filter_scores_and_topk
from ..utils.freeze import freeze_norms_and_params
from .base_dense_head import BaseDenseHead

# a masked-out text gets this logit (sigmoid = 0), as upstream
MASKED_TEXT_LOGIT = -10e6


def make_divisible(x: float, widen_factor: float = 1.0, divisor: int = 8) -> int:
    """``ceil(x * widen_factor / divisor) * divisor`` (mmyolo's channel rounding)."""
    return math.ceil(x * widen_factor / divisor) * divisor


def region_text_similarity(
    img_embeds: Tensor, txt_embeds: Tensor, use_einsum: bool = True
) -> Tensor:
    """Dot product of every cell's embedding with every text embedding of its image.

    Args:
        img_embeds (Tensor): (B, C, H, W) region embeddings.
        txt_embeds (Tensor): (B, K, C) text embeddings.
        use_einsum (bool): einsum, or the equivalent matmul (for exporters without einsum).
            A channels-last ``img_embeds`` takes the matmul either way: its (B, H, W, C)
            memory makes the permute below a view, one batched matmul without copies, where
            einsum copies (measured on CPU: the same time in float32, 27x faster in bfloat16 for
            a (1, 512, 80, 80) map; the float32 results are equal).

    Returns:
        Tensor: (B, K, H, W) similarities.
    """
    if use_einsum and not img_embeds.is_contiguous(memory_format=torch.channels_last):
        return torch.einsum('bchw,bkc->bkhw', img_embeds, txt_embeds)
    batch, channel, height, width = img_embeds.shape
    k = txt_embeds.size(1)
    x = img_embeds.permute(0, 2, 3, 1).reshape(batch, -1, channel)
    x = torch.matmul(x, txt_embeds.permute(0, 2, 1))
    return x.reshape(batch, height, width, k).permute(0, 3, 1, 2)


@MODELS.register_module()
class ContrastiveHead(BaseModule):
    """v1 region-text head: ``<l2(x), l2(w)> * exp(logit_scale) + bias``.

    Args:
        embed_dims (int): embedding channels (kept for config compatibility).
        init_cfg (dict, optional): mmengine init config.
        use_einsum (bool): see :func:`region_text_similarity`.

    Parameters: ``bias`` (scalar, 0) and ``logit_scale`` (scalar, ``log(1 / 0.07)``).
    """

    def __init__(
        self, embed_dims: int, init_cfg: dict | None = None, use_einsum: bool = True
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.bias = nn.Parameter(torch.zeros([]))
        self.logit_scale = nn.Parameter(torch.ones([]) * math.log(1 / 0.07))
        self.use_einsum = use_einsum

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        """(B, C, H, W) region embeddings, (B, K, C) texts -> (B, K, H, W) logits."""
        x = F.normalize(x, dim=1, p=2)
        w = F.normalize(w, dim=-1, p=2)
        x = region_text_similarity(x, w, self.use_einsum)
        return x * self.logit_scale.exp() + self.bias


@MODELS.register_module()
class BNContrastiveHead(BaseModule):
    """v2 region-text head: ``<BN(x), l2(w)> * exp(logit_scale) + bias``.

    Args:
        embed_dims (int): embedding channels (of the BatchNorm ``norm``).
        norm_cfg (dict): norm layer config, e.g. ``dict(type='BN', momentum=0.03, eps=0.001)``.
        init_cfg (dict, optional): mmengine init config.
        use_einsum (bool): see :func:`region_text_similarity`.

    Parameters: ``norm``, ``bias`` (scalar, 0) and ``logit_scale`` (scalar, -1.0).
    """

    def __init__(
        self, embed_dims: int, norm_cfg: dict, init_cfg: dict | None = None, use_einsum: bool = True
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.norm = build_norm_layer(norm_cfg, embed_dims)[1]
        self.bias = nn.Parameter(torch.zeros([]))
        # -1.0 is more stable than log(1 / 0.07) (upstream's comment)
        self.logit_scale = nn.Parameter(-1.0 * torch.ones([]))
        self.use_einsum = use_einsum

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        """(B, C, H, W) region embeddings, (B, K, C) texts -> (B, K, H, W) logits."""
        x = self.norm(x)
        w = F.normalize(w, dim=-1, p=2)
        x = region_text_similarity(x, w, self.use_einsum)
        return x * self.logit_scale.exp() + self.bias


@MODELS.register_module()
class YOLOWorldHeadModule(BaseModule):
    """The layers of the YOLO-World head (see the module docstring).

    Args:
        num_classes (int): number of classes the bias init is computed for (the number of
            texts at run time may differ).
        in_channels (int | Sequence[int]): channels of each input level before ``widen``.
        embed_dims (int): text / region embedding channels (512 for CLIP ViT-B/32).
        widen_factor (float): in_channels become ``make_divisible(c, widen_factor)``.
        num_base_priors (int): priors per cell. Defaults to 1.
        featmap_strides (Sequence[int]): Defaults to (8, 16, 32).
        reg_max (int): bins of the distance distribution. Defaults to 16.
        norm_cfg (dict): Defaults to BN(momentum=0.03, eps=0.001).
        act_cfg (dict): Defaults to SiLU(inplace=True).
        use_bn_head (bool): :class:`BNContrastiveHead` (v2) instead of :class:`ContrastiveHead`.
        use_einsum (bool): see :func:`region_text_similarity`.
        freeze_all (bool): no gradients and BatchNorms in eval mode.
        init_cfg (dict, optional): mmengine init config.

    ``forward(img_feats, txt_feats, txt_masks=None)``: ``img_feats`` one (B, in_i, H_i, W_i)
    map per level, ``txt_feats`` (B, K, embed_dims), ``txt_masks`` (B, K) 1 = real text, 0 =
    padding (its logits become -1e7). Returns per-level lists ``cls_logits`` (B, K, H, W),
    ``bbox_preds`` (B, 4, H, W) expected distances in stride units, and in training mode also
    ``bbox_dist_preds`` (B, H * W, 4, reg_max) distribution logits.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int | Sequence[int],
        embed_dims: int,
        widen_factor: float = 1.0,
        num_base_priors: int = 1,
        featmap_strides: Sequence[int] = (8, 16, 32),
        reg_max: int = 16,
        norm_cfg: dict = dict(type='BN', momentum=0.03, eps=0.001),  # noqa: B006
        act_cfg: dict = dict(type='SiLU', inplace=True),  # noqa: B006
        use_bn_head: bool = False,
        use_einsum: bool = True,
        freeze_all: bool = False,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_classes = num_classes
        self.featmap_strides = featmap_strides
        self.num_levels = len(self.featmap_strides)
        self.num_base_priors = num_base_priors
        self.norm_cfg = norm_cfg
        self.act_cfg = act_cfg
        self.reg_max = reg_max
        self.embed_dims = embed_dims
        self.use_bn_head = use_bn_head
        self.use_einsum = use_einsum
        self.freeze_all = freeze_all
        if isinstance(in_channels, int):
            in_channels = [in_channels] * self.num_levels
        if len(in_channels) != self.num_levels:
            raise ValueError(
                f'YOLOWorldHeadModule: {len(in_channels)} in_channels for '
                f'{self.num_levels} featmap_strides'
            )
        self.in_channels = [make_divisible(c, widen_factor) for c in in_channels]
        self._init_layers()

    def _conv(self, in_ch: int, out_ch: int) -> ConvModule:
        return ConvModule(
            in_ch,
            out_ch,
            kernel_size=3,
            stride=1,
            padding=1,
            norm_cfg=self.norm_cfg,
            act_cfg=self.act_cfg,
        )

    def _init_layers(self) -> None:
        self.cls_preds = nn.ModuleList()
        self.reg_preds = nn.ModuleList()
        self.cls_contrasts = nn.ModuleList()
        reg_out_channels = max((16, self.in_channels[0] // 4, self.reg_max * 4))
        cls_out_channels = max(self.in_channels[0], self.num_classes)
        for in_ch in self.in_channels:
            self.reg_preds.append(
                nn.Sequential(
                    self._conv(in_ch, reg_out_channels),
                    self._conv(reg_out_channels, reg_out_channels),
                    nn.Conv2d(reg_out_channels, 4 * self.reg_max, kernel_size=1),
                )
            )
            self.cls_preds.append(
                nn.Sequential(
                    self._conv(in_ch, cls_out_channels),
                    self._conv(cls_out_channels, cls_out_channels),
                    nn.Conv2d(cls_out_channels, self.embed_dims, kernel_size=1),
                )
            )
            if self.use_bn_head:
                self.cls_contrasts.append(
                    BNContrastiveHead(self.embed_dims, self.norm_cfg, use_einsum=self.use_einsum)
                )
            else:
                self.cls_contrasts.append(
                    ContrastiveHead(self.embed_dims, use_einsum=self.use_einsum)
                )
        self.register_buffer(
            'proj', torch.arange(self.reg_max, dtype=torch.float), persistent=False
        )
        if self.freeze_all:
            self._freeze_all()

    def init_weights(self, prior_prob: float = 0.01) -> None:
        """mmengine/mmcv init (Kaiming on ConvModule convs, BN 1/0), then YOLOv8's biases
        (box 1.0), then YOLO-World's: class-embedding bias 0 and contrast bias
        ``log(5 / num_classes / (640 / stride)^2)``. ``prior_prob`` is unused, as upstream."""
        super().init_weights()
        for reg_pred, cls_pred, cls_contrast, stride in zip(
            self.reg_preds, self.cls_preds, self.cls_contrasts, self.featmap_strides
        ):
            reg_pred[-1].bias.data[:] = 1.0
            cls_pred[-1].bias.data[:] = 0.0
            if hasattr(cls_contrast, 'bias'):
                nn.init.constant_(
                    cls_contrast.bias.data, math.log(5 / self.num_classes / (640 / stride) ** 2)
                )

    def _freeze_all(self) -> None:
        freeze_norms_and_params(self)

    def train(self, mode: bool = True):
        super().train(mode)
        return freeze_norms_and_params(self) if self.freeze_all else self

    def forward(
        self, img_feats: Sequence[Tensor], txt_feats: Tensor, txt_masks: Tensor | None = None
    ) -> tuple[list, ...]:
        if len(img_feats) != self.num_levels:
            raise ValueError(
                f'{type(self).__name__}: got {len(img_feats)} feature maps for '
                f'{self.num_levels} levels'
            )
        n = self.num_levels
        return multi_apply(
            self.forward_single, img_feats, [txt_feats] * n, [txt_masks] * n, *self.level_branches()
        )

    def level_branches(self) -> tuple[nn.ModuleList, ...]:
        """The per-level modules :meth:`forward_single` receives after the texts."""
        return self.cls_preds, self.reg_preds, self.cls_contrasts

    def forward_single(
        self,
        img_feat: Tensor,
        txt_feat: Tensor,
        txt_masks: Tensor | None,
        cls_pred: nn.Module,
        reg_pred: nn.Module,
        cls_contrast: nn.Module,
    ) -> tuple:
        """One level: (B, in, H, W) -> logits (B, K, H, W), distances (B, 4, H, W)
        [, distribution logits (B, H * W, 4, reg_max) in training]."""
        cls_logit = self.region_text_logits(img_feat, txt_feat, txt_masks, cls_pred, cls_contrast)
        bbox_preds, bbox_dist_preds = self.expected_distances(img_feat, reg_pred)
        if self.training:
            return cls_logit, bbox_preds, bbox_dist_preds
        return cls_logit, bbox_preds

    def region_text_logits(
        self,
        img_feat: Tensor,
        txt_feat: Tensor,
        txt_masks: Tensor | None,
        cls_pred: nn.Module,
        cls_contrast: nn.Module,
    ) -> Tensor:
        """One level's class branch: (B, in, H, W) -> (B, K, H, W) region-text logits;
        texts whose ``txt_masks`` entry is 0 get :data:`MASKED_TEXT_LOGIT`."""
        b, _, h, w = img_feat.shape
        cls_logit = cls_contrast(cls_pred(img_feat), txt_feat)
        if txt_masks is not None:
            keep = txt_masks.view(b, -1, 1, 1).expand(-1, -1, h, w)
            if self.training:
                cls_logit = cls_logit * keep
            # float16 cannot hold -10e6 (it would become -inf, whose sigmoid BCE is NaN)
            masked = max(MASKED_TEXT_LOGIT, torch.finfo(cls_logit.dtype).min)
            cls_logit = torch.where(keep == 0, cls_logit.new_tensor(masked), cls_logit)
        return cls_logit

    def expected_distances(self, img_feat: Tensor, reg_pred: nn.Module) -> tuple[Tensor, Tensor]:
        """One level's distance branch: (B, in, H, W) -> expected distances (B, 4, H, W) in
        stride units and the distribution logits (B, H * W, 4, reg_max) (the distances
        themselves when ``reg_max`` is 1)."""
        b, _, h, w = img_feat.shape
        bbox_dist_preds = reg_pred(img_feat)
        if self.reg_max > 1:
            bbox_dist_preds = bbox_dist_preds.reshape([-1, 4, self.reg_max, h * w]).permute(
                0, 3, 1, 2
            )
            bbox_preds = (
                bbox_dist_preds.softmax(3)
                .matmul(self.proj.view([-1, 1]).to(bbox_dist_preds.dtype))
                .squeeze(-1)
            )
            bbox_preds = bbox_preds.transpose(1, 2).reshape(b, -1, h, w)
        else:
            bbox_preds = bbox_dist_preds
        return bbox_preds, bbox_dist_preds


@MODELS.register_module()
class YOLOWorldHead(BaseDenseHead):
    """YOLO-World head (YOLOv8 head logic on region-text logits).

    Training (:meth:`loss_by_feat`): boxes decoded from the expected distances are assigned
    to the padded ground truth by ``train_cfg.assigner`` (``BatchTaskAlignedAssigner``); with
    ``S`` = the sum of the assigned soft scores (at least 1):

    - ``loss_cls`` = sum of the element-wise sigmoid BCE against the soft scores / ``S``;
    - ``loss_bbox`` = CIoU loss of positives (boxes in stride units), weighted by each
      positive's score sum, / ``S``;
    - ``loss_dfl`` = DFL of positives against the clamped (``reg_max - 1 - 0.01``) target
      distances, same weights, averaged by ``S``;

    each multiplied by ``num_imgs * world_size`` (upstream's normalisation: the optimizer
    wrapper's gradient averaging over processes is undone).

    Inference (:meth:`predict_by_feat`): sigmoid scores; per image the (prior, class) pairs
    with score > ``score_thr`` (one per prior unless ``multi_label``), the ``nms_pre`` best,
    mapped back through the letterbox ``pad_param`` and ``scale_factor``, class-aware NMS
    (``nms``), ``max_per_img``, clipped to the original image.

    Args:
        head_module (dict): :class:`YOLOWorldHeadModule` config.
        prior_generator (dict): Defaults to ``MlvlPointGenerator(offset=0.5, strides=[8, 16,
            32])``.
        bbox_coder (dict): Defaults to ``DistancePointBBoxCoder``.
        loss_cls (dict): Defaults to sigmoid ``CrossEntropyLoss`` (reduction 'none', 0.5).
        loss_bbox (dict): Defaults to ``IoULoss`` (ciou, xyxy, reduction 'sum', 7.5).
        loss_dfl (dict): Defaults to ``DistributionFocalLoss`` (mean, 1.5 / 4).
        train_cfg (dict, optional): ``assigner``.
        test_cfg (dict, optional): ``multi_label``, ``score_thr``, ``nms_pre``, ``nms``,
            ``max_per_img``, optional ``min_bbox_size``.
        init_cfg (dict, optional): mmengine init config.
        world_size (int): processes the losses are scaled by; -1 = the current world size.
    """

    box_type = HorizontalBoxes
    clip_to_image = True

    def __init__(
        self,
        head_module: dict,
        prior_generator: dict = dict(  # noqa: B006
            type='MlvlPointGenerator', offset=0.5, strides=[8, 16, 32]
        ),
        bbox_coder: dict = dict(type='DistancePointBBoxCoder'),  # noqa: B006
        loss_cls: dict = dict(  # noqa: B006
            type='CrossEntropyLoss', use_sigmoid=True, reduction='none', loss_weight=0.5
        ),
        loss_bbox: dict = dict(  # noqa: B006
            type='IoULoss',
            iou_mode='ciou',
            bbox_format='xyxy',
            reduction='sum',
            loss_weight=7.5,
            return_iou=False,
        ),
        loss_dfl: dict = dict(  # noqa: B006
            type='DistributionFocalLoss', reduction='mean', loss_weight=1.5 / 4
        ),
        train_cfg: dict | None = None,
        test_cfg: dict | None = None,
        init_cfg: dict | None = None,
        world_size: int = -1,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.head_module = MODELS.build(head_module)
        self.num_classes = self.head_module.num_classes
        self.featmap_strides = self.head_module.featmap_strides
        self.num_levels = len(self.featmap_strides)
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.loss_dfl = MODELS.build(loss_dfl)
        self.prior_generator = TASK_UTILS.build(prior_generator)
        self.bbox_coder = TASK_UTILS.build(bbox_coder)
        self.num_base_priors = self.prior_generator.num_base_priors[0]
        self.world_size = world_size
        self.assigner = None
        if self.train_cfg:
            self.assigner = TASK_UTILS.build(self.train_cfg['assigner'])

    # --------------------------------------------------------------- forward
    def forward(
        self, img_feats: Sequence[Tensor], txt_feats: Tensor, txt_masks: Tensor | None = None
    ) -> tuple[list, ...]:
        """See :class:`YOLOWorldHeadModule`."""
        return self.head_module(img_feats, txt_feats, txt_masks)

    def loss(
        self,
        img_feats: Sequence[Tensor],
        txt_feats: Tensor,
        txt_masks: Tensor | None,
        batch_data_samples: dict | list,
    ) -> dict:
        """Losses of a batch.

        Args:
            img_feats (Sequence[Tensor]): neck outputs, one (B, C_i, H_i, W_i) per level.
            txt_feats (Tensor): (B, K, embed_dims) text embeddings.
            txt_masks (Tensor | None): (B, K) 1 for real texts, 0 for padding texts.
            batch_data_samples (dict | list): the YOLO collate's ``dict(bboxes_labels=(N, 6)
                [img_idx, label, x1, y1, x2, y2], img_metas=[...])``, or a list of data
                samples with ``gt_instances``.
        """
        outs = self(img_feats, txt_feats, txt_masks)
        if isinstance(batch_data_samples, dict):
            return self.loss_by_feat(
                *outs,
                batch_data_samples['bboxes_labels'],
                batch_data_samples['img_metas'],
                batch_text_masks=txt_masks,
            )
        return self.loss_from_outputs(outs, batch_data_samples, batch_text_masks=txt_masks)

    def loss_from_outputs(
        self, outs: tuple, batch_data_samples: list, batch_text_masks: Tensor | None = None
    ) -> dict:
        batch_gt_instances = [data_sample.gt_instances for data_sample in batch_data_samples]
        batch_img_metas = [data_sample.metainfo for data_sample in batch_data_samples]
        return self.loss_by_feat(
            *outs, batch_gt_instances, batch_img_metas, batch_text_masks=batch_text_masks
        )

    def predict(
        self,
        img_feats: Sequence[Tensor],
        txt_feats: Tensor,
        txt_masks: Tensor | None,
        batch_data_samples: list,
        rescale: bool = False,
    ) -> list[InstanceData]:
        """Detections per image (``bboxes`` HorizontalBoxes, ``scores``, ``labels`` = text
        indices)."""
        outs = self(img_feats, txt_feats, txt_masks)
        return self.predict_from_outputs(outs, batch_data_samples, rescale=rescale)

    # -------------------------------------------------------------- training
    def loss_by_feat(
        self,
        cls_scores: Sequence[Tensor],
        bbox_preds: Sequence[Tensor],
        bbox_dist_preds: Sequence[Tensor],
        batch_gt_instances: Tensor | Sequence[InstanceData],
        batch_img_metas: Sequence[dict],
        batch_gt_instances_ignore: list | None = None,
        batch_text_masks: Tensor | None = None,
    ) -> dict:
        """Losses from the training-mode outputs.

        Args:
            cls_scores (Sequence[Tensor]): per level (B, K, H, W) logits.
            bbox_preds (Sequence[Tensor]): per level (B, 4, H, W) distances (stride units).
            bbox_dist_preds (Sequence[Tensor]): per level (B, H * W, 4, reg_max) logits.
            batch_gt_instances (Tensor | Sequence[InstanceData]): see
                :func:`ai4rs.models.utils.gt_instances_preprocess`; boxes (x1, y1, x2, y2) in
                input pixels.
            batch_img_metas (Sequence[dict]): one per image (only their number is used).
            batch_gt_instances_ignore: unused (as upstream).
            batch_text_masks (Tensor, optional): (B, K); padding texts get no class loss.

        Returns:
            dict: ``loss_cls``, ``loss_bbox``, ``loss_dfl`` (scalars).
        """
        num_imgs = len(batch_img_metas)
        reg_max = self.head_module.reg_max
        num_classes, priors, gt_labels, gt_bboxes = self.loss_targets_setup(
            cls_scores, batch_gt_instances, num_imgs, box_dim=4
        )
        # (P, 1) stride of each prior
        stride_tensor = priors[:, 2:3]
        # upstream's padding rule: a box whose coordinates sum to <= 0 is padding
        pad_bbox_flag = (gt_bboxes.sum(-1, keepdim=True) > 0).float()

        # losses in float32 whatever the autocast dtype of the outputs
        flatten_cls_preds = self.flatten_levels(cls_scores, num_classes).float()
        flatten_pred_bboxes = self.flatten_levels(bbox_preds, 4).float()
        flatten_dist_preds = self.flatten_dist_logits(bbox_dist_preds, num_imgs)
        flatten_pred_bboxes = self.bbox_coder.decode(
            priors[:, :2], flatten_pred_bboxes, stride_tensor[:, 0]
        )

        assigned_result, assigned_scores_sum, loss_cls = self.assign_and_classify(
            flatten_pred_bboxes,
            flatten_cls_preds,
            priors,
            gt_labels,
            gt_bboxes,
            pad_bbox_flag,
            batch_text_masks,
        )
        assigned_bboxes = assigned_result['assigned_bboxes']
        assigned_scores = assigned_result['assigned_scores']
        fg_mask_pre_prior = assigned_result['fg_mask_pre_prior']

        # boxes in stride units
        assigned_bboxes = assigned_bboxes / stride_tensor
        flatten_pred_bboxes = flatten_pred_bboxes / stride_tensor

        if bool(fg_mask_pre_prior.any()):
            pred_bboxes_pos = flatten_pred_bboxes[fg_mask_pre_prior]
            assigned_bboxes_pos = assigned_bboxes[fg_mask_pre_prior]
            bbox_weight = assigned_scores.sum(-1)[fg_mask_pre_prior]
            loss_bbox = (
                self.loss_bbox(
                    pred_bboxes_pos, assigned_bboxes_pos, weight=bbox_weight.unsqueeze(-1)
                )
                / assigned_scores_sum
            )
            assigned_ltrb = self.bbox_coder.encode(
                priors[:, :2] / stride_tensor, assigned_bboxes, max_dis=reg_max - 1, eps=0.01
            )
            loss_dfl = self.distribution_focal_loss(
                flatten_dist_preds[fg_mask_pre_prior],
                assigned_ltrb[fg_mask_pre_prior],
                bbox_weight,
                assigned_scores_sum,
            )
        else:
            loss_bbox = flatten_pred_bboxes.sum() * 0
            loss_dfl = flatten_pred_bboxes.sum() * 0
        return self.scale_losses(num_imgs, loss_cls, loss_bbox, loss_dfl)

    # ------------------------------------------- loss steps both YOLO-World heads share
    def loss_targets_setup(
        self,
        cls_scores: Sequence[Tensor],
        batch_gt_instances: Tensor | Sequence[InstanceData],
        num_imgs: int,
        box_dim: int,
    ) -> tuple[int, Tensor, Tensor, Tensor]:
        """Check the head is set up to train on these outputs and ground truth.

        Args:
            cls_scores (Sequence[Tensor]): per level (B, K, H, W) logits.
            batch_gt_instances: as :func:`ai4rs.models.utils.gt_instances_preprocess`.
            num_imgs (int): B.
            box_dim (int): the ground-truth box width this head trains on (4 or 5).

        Returns:
            tuple: K; priors (P, 4) ``(x, y, stride, stride)``; ground truth labels
            (B, N, 1) and boxes (B, N, box_dim), zero rows padding.
        """
        name = type(self).__name__
        if self.assigner is None:
            raise ValueError(f'{name}.loss_by_feat needs train_cfg.assigner')
        num_classes = cls_scores[0].size(1)
        if num_classes != self.assigner.num_classes:
            raise ValueError(
                f'{name}: {num_classes} texts per image but the assigner '
                f'was built for num_classes={self.assigner.num_classes}'
            )
        priors = self.flat_priors(cls_scores, with_stride=True)
        gt_info = gt_instances_preprocess(batch_gt_instances, num_imgs)
        if gt_info.size(-1) != box_dim + 1:
            raise ValueError(
                f'{name}: ground-truth boxes must have {box_dim} values, got {gt_info.size(-1) - 1}'
            )
        return num_classes, priors, gt_info[:, :, :1], gt_info[:, :, 1:]

    def flatten_dist_logits(self, bbox_dist_preds: Sequence[Tensor], num_imgs: int) -> Tensor:
        """Per level (B, H * W, 4, reg_max) logits -> (B, P, 4 * reg_max), float32."""
        reg_max = self.head_module.reg_max
        return torch.cat(
            [d.reshape(num_imgs, -1, reg_max * 4) for d in bbox_dist_preds], dim=1
        ).float()

    def assign_and_classify(
        self,
        pred_boxes: Tensor,
        flatten_cls_preds: Tensor,
        priors: Tensor,
        gt_labels: Tensor,
        gt_bboxes: Tensor,
        pad_bbox_flag: Tensor,
        batch_text_masks: Tensor | None,
    ) -> tuple[dict, Tensor, Tensor]:
        """Task-aligned assignment and the classification loss.

        Args:
            pred_boxes (Tensor): (B, P, box_dim) decoded boxes in input pixels (detached
                for the assigner here).
            flatten_cls_preds (Tensor): (B, P, K) logits.
            priors (Tensor): (P, 4).
            gt_labels, gt_bboxes, pad_bbox_flag (Tensor): (B, N, 1), (B, N, box_dim),
                (B, N, 1).
            batch_text_masks (Tensor, optional): (B, K); padding texts get no class loss.

        Returns:
            tuple: the assigner's result, the positives' score sum (>= 1, the loss
            normaliser) and ``loss_cls``.
        """
        num_imgs = flatten_cls_preds.size(0)
        assigned_result = self.assigner(
            pred_boxes.detach().type(gt_bboxes.dtype),
            flatten_cls_preds.detach().sigmoid(),
            priors,
            gt_labels,
            gt_bboxes,
            pad_bbox_flag,
        )
        assigned_scores = assigned_result['assigned_scores']
        assigned_scores_sum = assigned_scores.sum().clamp(min=1)
        loss_cls = self.loss_cls(flatten_cls_preds, assigned_scores)
        if batch_text_masks is not None:
            loss_cls = loss_cls * batch_text_masks.view(num_imgs, 1, -1).to(loss_cls)
        return assigned_result, assigned_scores_sum, loss_cls.sum() / assigned_scores_sum

    def distribution_focal_loss(
        self, dist_pos: Tensor, target_ltrb: Tensor, weight: Tensor, avg_factor: Tensor
    ) -> Tensor:
        """DFL of the positives: ``dist_pos`` (n, 4 * reg_max) logits, ``target_ltrb``
        (n, 4) distances in stride units, ``weight`` (n,) per positive."""
        reg_max = self.head_module.reg_max
        return self.loss_dfl(
            dist_pos.reshape(-1, reg_max),
            target_ltrb.reshape(-1),
            weight=weight[:, None].expand(-1, 4).reshape(-1),
            avg_factor=avg_factor,
        )

    def scale_losses(
        self, num_imgs: int, loss_cls: Tensor, loss_bbox: Tensor, loss_dfl: Tensor
    ) -> dict:
        """The losses times images per GPU times GPUs (as upstream: the optimizer wrapper's
        per-batch normalisation is undone)."""
        world_size = get_dist_info()[1] if self.world_size == -1 else self.world_size
        scale = num_imgs * world_size
        return dict(
            loss_cls=loss_cls * scale, loss_bbox=loss_bbox * scale, loss_dfl=loss_dfl * scale
        )

    # ------------------------------------------------------------- inference
    def predict_by_feat(
        self,
        cls_scores: Sequence[Tensor],
        bbox_preds: Sequence[Tensor],
        objectnesses: Sequence[Tensor] | None = None,
        batch_img_metas: Sequence[dict] | None = None,
        cfg: dict | None = None,
        rescale: bool = True,
        with_nms: bool = True,
    ) -> list[InstanceData]:
        """Detections per image from the eval-mode outputs.

        Args:
            cls_scores (Sequence[Tensor]): per level (B, K, H, W) logits.
            bbox_preds (Sequence[Tensor]): per level (B, 4, H, W) distances (stride units).
            objectnesses (Sequence[Tensor], optional): per level (B, 1, H, W) logits; scores
                are multiplied by their sigmoid (YOLO-World has none).
            batch_img_metas (Sequence[dict]): ``ori_shape``, ``scale_factor`` (sx, sy),
                optional ``pad_param`` (top, bottom, left, right), ``img_shape``.
            cfg (dict, optional): overrides ``test_cfg``.
            rescale (bool): boxes in original-image pixels (else network-input pixels).
            with_nms (bool): run NMS.

        Returns:
            list[InstanceData]: ``bboxes`` (HorizontalBoxes (n, 4) x1, y1, x2, y2),
            ``scores`` (n,), ``labels`` (n,) text indices; best first when NMS ran.
        """
        if batch_img_metas is None:
            raise ValueError('YOLOWorldHead.predict_by_feat: batch_img_metas is required')
        outs = (cls_scores, bbox_preds) + (() if objectnesses is None else (objectnesses,))
        return super().predict_by_feat(
            *outs,
            batch_img_metas=batch_img_metas,
            cfg=copy.deepcopy(self.test_cfg if cfg is None else cfg),
            rescale=rescale,
            with_nms=with_nms,
        )

    def decode_by_feat(
        self,
        cls_scores: Sequence[Tensor],
        bbox_preds: Sequence[Tensor],
        objectnesses: Sequence[Tensor] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Boxes and scores of every prior.

        Returns:
            tuple[Tensor, Tensor]: ``boxes`` (B, P, 4) x1, y1, x2, y2 in network-input
            pixels; ``scores`` (B, P, K) sigmoid region-text scores (times the sigmoid
            objectness when given).
        """
        if len(cls_scores) != len(bbox_preds) or (
            objectnesses is not None and len(objectnesses) != len(cls_scores)
        ):
            raise ValueError('YOLOWorldHead.decode_by_feat: one output of each kind per level')
        num_classes = cls_scores[0].size(1)
        priors = self.flat_priors(cls_scores, with_stride=True)
        scores = self.flatten_levels(cls_scores, num_classes).sigmoid()
        boxes = self.bbox_coder.decode(
            priors[None, :, :2], self.flatten_levels(bbox_preds, 4).to(priors.dtype), priors[:, 2]
        )
        if objectnesses is not None:
            scores = scores * self.flatten_levels(objectnesses, 1).sigmoid()
        return boxes, scores

    def select_candidates(self, boxes: Tensor, scores: Tensor, cfg: dict) -> InstanceData:
        """(prior, text) pairs with score > ``score_thr``, the ``nms_pre`` best: one per
        prior (its best text), or every pair above the threshold with ``multi_label``."""
        score_thr = cfg.get('score_thr', -1)
        nms_pre = cfg.get('nms_pre', 100000)
        if bool(cfg.get('multi_label', False)) and scores.size(1) > 1:
            scores, labels, keep_idxs, _ = filter_scores_and_topk(scores, score_thr, nms_pre)
        else:
            scores, labels = scores.max(1, keepdim=True)
            scores, _, keep_idxs, kept = filter_scores_and_topk(
                scores, score_thr, nms_pre, results=dict(labels=labels[:, 0])
            )
            labels = kept['labels']
        return InstanceData(scores=scores, labels=labels, bboxes=self.box_type(boxes[keep_idxs]))

    def select_candidates_batch(
        self, boxes: Tensor, scores: Tensor, cfg: dict
    ) -> list[InstanceData]:
        """:meth:`select_candidates` of (B, P, box_dim) boxes and (B, P, K) scores at once."""
        score_thr = cfg.get('score_thr', -1)
        nms_pre = cfg.get('nms_pre', 100000)
        if bool(cfg.get('multi_label', False)) and scores.size(-1) > 1:
            scores, labels, keep_idxs, img_idxs = batched_filter_scores_and_topk(
                scores, score_thr, nms_pre
            )
        else:
            scores, best = scores.max(-1, keepdim=True)
            scores, _, keep_idxs, img_idxs = batched_filter_scores_and_topk(
                scores, score_thr, nms_pre
            )
            labels = best[img_idxs, keep_idxs, 0]
        return self.split_by_image(
            img_idxs, boxes.size(0), boxes[img_idxs, keep_idxs], scores, labels
        )
