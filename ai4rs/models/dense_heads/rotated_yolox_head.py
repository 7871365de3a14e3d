"""Rotated YOLOX head: YOLOX's decoupled head plus an angle branch."""

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule, DepthwiseSeparableConvModule
from mmengine.model import bias_init_with_prob
from mmengine.structures import InstanceData
from torch import Tensor, nn

from ai4rs.registry import MODELS, TASK_UTILS
from ai4rs.structures.bbox import (
    RotatedBoxes,
    bbox_cxcywh_to_xyxy,
    get_box_tensor,
)

from ..layers.csp_layer import DEFAULT_ACT_CFG, DEFAULT_NORM_CFG
from ..layers.init_cfg import YOLOX_CONV_INIT
from ..task_modules.prior_generators import MlvlPointGenerator
from ..task_modules.samplers import PseudoSampler
from ..utils import multi_apply, reduce_mean
from .base_dense_head import BaseDenseHead
from .rotated_head_mixin import RotatedHeadMixin


@MODELS.register_module()
class RotatedYOLOXHead(RotatedHeadMixin, BaseDenseHead):
    """Decoupled YOLOX head for rotated boxes (le90 by default).

    For every stride there is a classification tower and a regression tower
    (``stacked_convs`` 3x3 ConvModules each). 1x1 predictors: ``conv_cls``
    (num_classes) on the classification tower; ``conv_reg`` (4), ``conv_obj``
    (1) and ``conv_ang`` (``angle_coder.encode_size``) on the regression tower.

    Decoding, with priors (x, y, s, s) at the top-left corner of each cell
    (``MlvlPointGenerator(offset=0)``): ``cx, cy = prior + d_xy * s``,
    ``w, h = exp(d_wh) * s``, ``t = norm_angle(angle_coder.decode(a), angle_version)``.

    Training uses :class:`RotatedSimOTAAssigner` (``train_cfg.assigner``) on
    cell-centre priors; losses: ``loss_cls`` (BCE on positives with IoU soft
    targets), ``loss_obj`` (BCE on all priors), ``loss_bbox`` (rotated IoU
    loss on positives), and ``loss_l1`` on ``[dx, dy, log w/s, log h/s,
    t / angle_norm_factor]`` once ``use_l1`` is switched on (by
    ``YOLOXModeSwitchHook``). All are divided by the number of positives
    (averaged over processes, at least 1).

    Args:
        num_classes (int): number of classes.
        in_channels (int): channels of the input feature maps.
        feat_channels (int): channels of the towers. Defaults to 256.
        stacked_convs (int): convs per tower. Defaults to 2.
        strides (Sequence[int]): stride of each level. Defaults to (8, 16, 32).
        use_depthwise (bool): depthwise separable tower convs.
        dcn_on_last_conv (bool): not supported (needs mmcv's compiled DCN).
        conv_bias (bool | str): bias of the tower convs. Defaults to 'auto'.
        conv_cfg, norm_cfg, act_cfg (dict): ConvModule configs.
        loss_cls, loss_bbox, loss_obj, loss_l1 (dict): loss configs.
        train_cfg (dict, optional): ``assigner`` config.
        test_cfg (dict, optional): ``score_thr``, ``nms`` (e.g.
            ``dict(type='nms_rotated', iou_threshold=0.1)``), optional ``max_per_img``.
        init_cfg (dict): Kaiming-uniform on Conv2d by default.
        angle_version (str): 'le90', 'le135' or 'oc'.
        angle_coder (dict): Defaults to ``dict(type='PseudoAngleCoder')``.
        separate_angle (bool): apply ``loss_bbox`` to the horizontal (x1, y1,
            x2, y2) boxes and ``loss_angle`` to the angle. Needs a horizontal
            IoU loss as ``loss_bbox`` and a ``loss_angle``. Defaults to False.
        with_angle_l1 (bool): include the angle in the L1 loss. Defaults to True.
        angle_norm_factor (float): the L1 angle term is ``t / angle_norm_factor``.
        loss_angle (dict, optional): only with ``separate_angle``.

    ``forward(feats)`` returns ``(cls_scores, bbox_preds, angle_preds,
    objectnesses)``, lists over levels of (B, C, H, W), (B, 4, H, W),
    (B, encode_size, H, W) and (B, 1, H, W) raw outputs.

    Inference (``predict_by_feat``, :class:`BaseDenseHead`'s flow): score = max_c
    sigmoid(cls) * sigmoid(obj), one label per prior, kept if >= ``test_cfg.score_thr``;
    with ``rescale`` the rotated boxes are mapped back to the original image by
    ``RotatedBoxes.rescale_(1 / scale_factor)``; then class-aware ``batched_nms`` with
    ``test_cfg.nms`` and ``max_per_img``. Boxes are ``RotatedBoxes`` (K, 5), not clipped.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        feat_channels: int = 256,
        stacked_convs: int = 2,
        strides: Sequence[int] = (8, 16, 32),
        use_depthwise: bool = False,
        dcn_on_last_conv: bool = False,
        conv_bias: bool | str = 'auto',
        conv_cfg=None,
        norm_cfg=DEFAULT_NORM_CFG,
        act_cfg=DEFAULT_ACT_CFG,
        loss_cls: dict = dict(  # noqa: B006
            type='CrossEntropyLoss',
            use_sigmoid=True,
            reduction='sum',
            loss_weight=1.0,
        ),
        loss_bbox: dict = dict(  # noqa: B006
            type='RotatedIoULoss',
            mode='square',
            eps=1e-16,
            reduction='sum',
            loss_weight=5.0,
        ),
        loss_obj: dict = dict(  # noqa: B006
            type='CrossEntropyLoss',
            use_sigmoid=True,
            reduction='sum',
            loss_weight=1.0,
        ),
        loss_l1: dict = dict(  # noqa: B006
            type='L1Loss',
            reduction='sum',
            loss_weight=1.0,
        ),
        train_cfg=None,
        test_cfg=None,
        init_cfg=YOLOX_CONV_INIT,
        angle_version: str = 'le90',
        angle_coder: dict = dict(type='PseudoAngleCoder'),  # noqa: B006
        separate_angle: bool = False,
        with_angle_l1: bool = True,
        angle_norm_factor: float = math.pi,
        loss_angle: dict | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.init_angle(angle_version, angle_coder)
        if dcn_on_last_conv:
            raise NotImplementedError(
                'RotatedYOLOXHead: dcn_on_last_conv=True needs a '
                'deformable conv, which ai4rs does not provide'
            )
        if separate_angle and not loss_angle:
            raise ValueError('RotatedYOLOXHead: separate_angle=True needs loss_angle')
        if separate_angle and loss_bbox.get('type', '').endswith('RotatedIoULoss'):
            raise ValueError(
                'RotatedYOLOXHead: with separate_angle=True, loss_bbox is applied '
                'to horizontal (x1, y1, x2, y2) boxes; RotatedIoULoss cannot be used'
            )
        self.num_classes = num_classes
        self.cls_out_channels = num_classes
        self.in_channels = in_channels
        self.feat_channels = feat_channels
        self.stacked_convs = stacked_convs
        self.strides = strides
        self.use_depthwise = use_depthwise
        self.dcn_on_last_conv = dcn_on_last_conv
        if not (conv_bias == 'auto' or isinstance(conv_bias, bool)):
            raise ValueError(
                f"RotatedYOLOXHead: conv_bias must be 'auto' or a bool, got {conv_bias!r}"
            )
        self.conv_bias = conv_bias
        self.use_sigmoid_cls = True
        self.conv_cfg = conv_cfg
        self.norm_cfg = norm_cfg
        self.act_cfg = act_cfg

        self.separate_angle = separate_angle
        self.with_angle_l1 = with_angle_l1
        self.angle_norm_factor = angle_norm_factor

        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.loss_obj = MODELS.build(loss_obj)
        self.loss_l1 = MODELS.build(loss_l1)
        self.loss_angle = MODELS.build(loss_angle) if separate_angle else None
        self.use_l1 = False  # switched on by YOLOXModeSwitchHook

        self.prior_generator = MlvlPointGenerator(strides, offset=0)
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg
        if train_cfg:
            self.assigner = TASK_UTILS.build(train_cfg['assigner'])
            self.sampler = PseudoSampler()
        self._init_layers()

    # ------------------------------------------------------------------ layers
    def _init_layers(self) -> None:
        self.multi_level_cls_convs = nn.ModuleList()
        self.multi_level_reg_convs = nn.ModuleList()
        self.multi_level_conv_cls = nn.ModuleList()
        self.multi_level_conv_reg = nn.ModuleList()
        self.multi_level_conv_obj = nn.ModuleList()
        self.multi_level_conv_ang = nn.ModuleList()
        for _ in self.strides:
            self.multi_level_cls_convs.append(self._build_stacked_convs())
            self.multi_level_reg_convs.append(self._build_stacked_convs())
            conv_cls, conv_reg, conv_obj, conv_ang = self._build_predictor()
            self.multi_level_conv_cls.append(conv_cls)
            self.multi_level_conv_reg.append(conv_reg)
            self.multi_level_conv_obj.append(conv_obj)
            self.multi_level_conv_ang.append(conv_ang)

    def _build_stacked_convs(self) -> nn.Sequential:
        conv = DepthwiseSeparableConvModule if self.use_depthwise else ConvModule
        return nn.Sequential(
            *[
                conv(
                    self.in_channels if i == 0 else self.feat_channels,
                    self.feat_channels,
                    3,
                    stride=1,
                    padding=1,
                    conv_cfg=self.conv_cfg,
                    norm_cfg=self.norm_cfg,
                    act_cfg=self.act_cfg,
                    bias=self.conv_bias,
                )
                for i in range(self.stacked_convs)
            ]
        )

    def _build_predictor(self) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
        conv_cls = nn.Conv2d(self.feat_channels, self.cls_out_channels, 1)
        conv_reg = nn.Conv2d(self.feat_channels, 4, 1)
        conv_obj = nn.Conv2d(self.feat_channels, 1, 1)
        conv_ang = nn.Conv2d(self.feat_channels, self.angle_coder.encode_size, 1)
        return conv_cls, conv_reg, conv_obj, conv_ang

    def init_weights(self) -> None:
        super().init_weights()
        # initial probability 0.01 for classes and objectness; upstream also
        # sets the angle bias to the same value
        bias_init = bias_init_with_prob(0.01)
        for convs in (
            self.multi_level_conv_cls,
            self.multi_level_conv_obj,
            self.multi_level_conv_ang,
        ):
            for conv in convs:
                conv.bias.data.fill_(bias_init)

    # ----------------------------------------------------------------- forward
    def forward_single(
        self,
        x: Tensor,
        cls_convs: nn.Module,
        reg_convs: nn.Module,
        conv_cls: nn.Module,
        conv_reg: nn.Module,
        conv_obj: nn.Module,
        conv_ang: nn.Module,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        cls_feat = cls_convs(x)
        reg_feat = reg_convs(x)
        return conv_cls(cls_feat), conv_reg(reg_feat), conv_ang(reg_feat), conv_obj(reg_feat)

    def forward(self, x: Sequence[Tensor]) -> tuple[list, list, list, list]:
        if len(x) != len(self.strides):
            raise ValueError(
                f'RotatedYOLOXHead: expected {len(self.strides)} feature maps, got {len(x)}'
            )
        return multi_apply(
            self.forward_single,
            x,
            self.multi_level_cls_convs,
            self.multi_level_reg_convs,
            self.multi_level_conv_cls,
            self.multi_level_conv_reg,
            self.multi_level_conv_obj,
            self.multi_level_conv_ang,
        )

    # ---------------------------------------------------------------- decoding
    def _bbox_decode(self, priors: Tensor, bbox_preds: Tensor, angle_preds: Tensor) -> Tensor:
        """Decode to rboxes.

        Args:
            priors (Tensor): (P, 4) as (x, y, sw, sh).
            bbox_preds (Tensor): (B, P, 4) raw (dx, dy, dw, dh).
            angle_preds (Tensor): (B, P, encode_size) raw angle outputs.

        Returns:
            Tensor: (B, P, 5) as (cx, cy, w, h, t), t normalised to ``angle_version``.
        """
        xys = bbox_preds[..., :2] * priors[:, 2:] + priors[:, :2]
        whs = bbox_preds[..., 2:].exp() * priors[:, 2:]
        return torch.cat([xys, whs, self.decode_angle(angle_preds)], dim=-1)

    # -------------------------------------------------------------------- loss
    def loss_by_feat(
        self,
        cls_scores: Sequence[Tensor],
        bbox_preds: Sequence[Tensor],
        angle_preds: Sequence[Tensor],
        objectnesses: Sequence[Tensor],
        batch_gt_instances: Sequence[InstanceData],
        batch_img_metas: Sequence[dict],
        batch_gt_instances_ignore: Sequence[InstanceData | None] | None = None,
    ) -> dict:
        """Losses of a batch.

        Args:
            cls_scores, bbox_preds, angle_preds, objectnesses: per-level outputs of
                :meth:`forward`.
            batch_gt_instances (list[InstanceData]): ``bboxes`` (G, 5) rboxes
                (Tensor or RotatedBoxes) and ``labels`` (G,), per image.
            batch_img_metas (list[dict]): meta information per image.
            batch_gt_instances_ignore: ignored per image (SimOTA does not use them).

        Returns:
            dict: ``loss_cls``, ``loss_bbox``, ``loss_obj`` (+ ``loss_angle`` with
            ``separate_angle``, + ``loss_l1`` once ``use_l1``), scalars.
        """
        num_imgs = len(batch_img_metas)
        if batch_gt_instances_ignore is None:
            batch_gt_instances_ignore = [None] * num_imgs
        priors = self.flat_priors(cls_scores)
        # losses are computed in float32 even under autocast
        flat_cls = self.flatten_levels(cls_scores, self.cls_out_channels).float()
        flat_bbox = self.flatten_levels(bbox_preds, 4).float()
        flat_angle = self.flatten_levels(angle_preds, self.angle_coder.encode_size).float()
        flat_obj = self.flatten_levels(objectnesses, 1).squeeze(-1).float()
        flat_rbboxes = self._bbox_decode(priors, flat_bbox, flat_angle)

        (pos_masks, cls_targets, obj_targets, bbox_targets, l1_targets, num_fg_imgs) = multi_apply(
            self._get_targets_single,
            priors.unsqueeze(0).repeat(num_imgs, 1, 1),
            flat_cls.detach(),
            flat_rbboxes.detach(),
            flat_obj.detach(),
            batch_gt_instances,
            batch_img_metas,
            batch_gt_instances_ignore,
        )
        num_pos = torch.tensor(sum(num_fg_imgs), dtype=torch.float, device=flat_cls.device)
        num_total_samples = max(reduce_mean(num_pos), 1.0)

        pos_masks = torch.cat(pos_masks, 0)
        cls_targets = torch.cat(cls_targets, 0)
        obj_targets = torch.cat(obj_targets, 0)
        bbox_targets = torch.cat(bbox_targets, 0)

        loss_obj = self.loss_obj(flat_obj.view(-1, 1), obj_targets) / num_total_samples
        losses = dict()
        if num_pos > 0:
            loss_cls = (
                self.loss_cls(flat_cls.view(-1, self.num_classes)[pos_masks], cls_targets)
                / num_total_samples
            )
            if self.separate_angle:
                loss_bbox = (
                    self.loss_bbox(
                        bbox_cxcywh_to_xyxy(flat_rbboxes.view(-1, 5)[pos_masks, :4]),
                        bbox_cxcywh_to_xyxy(bbox_targets[:, :4]),
                    )
                    / num_total_samples
                )
                angle_targets = self.angle_coder.encode(bbox_targets[:, 4:5])
                loss_angle = (
                    self.loss_angle(
                        flat_angle.view(-1, self.angle_coder.encode_size)[pos_masks], angle_targets
                    )
                    / num_total_samples
                )
            else:
                loss_bbox = (
                    self.loss_bbox(flat_rbboxes.view(-1, 5)[pos_masks], bbox_targets)
                    / num_total_samples
                )
        else:
            # keep every branch in the graph when no image has an object; the raw
            # outputs, not the decoded boxes (exp(d) may be inf, and inf * 0 is NaN)
            loss_cls = flat_cls.sum() * 0
            loss_bbox = flat_bbox.sum() * 0 + flat_angle.sum() * 0
            loss_angle = flat_angle.sum() * 0
        losses.update(loss_cls=loss_cls, loss_bbox=loss_bbox, loss_obj=loss_obj)
        if self.separate_angle:
            losses['loss_angle'] = loss_angle

        if self.use_l1:
            if num_pos > 0:
                l1_targets = torch.cat(l1_targets, 0)
                if self.with_angle_l1:
                    l1_preds = torch.cat(
                        [
                            flat_bbox,
                            self.angle_coder.decode(flat_angle).unsqueeze(-1)
                            / self.angle_norm_factor,
                        ],
                        dim=-1,
                    ).view(-1, 5)
                else:
                    l1_preds = flat_bbox.view(-1, 4)
                loss_l1 = self.loss_l1(l1_preds[pos_masks], l1_targets) / num_total_samples
            else:
                loss_l1 = flat_bbox.sum() * 0 + flat_angle.sum() * 0
            losses['loss_l1'] = loss_l1
        return losses

    @torch.no_grad()
    def _get_targets_single(
        self,
        priors: Tensor,
        cls_preds: Tensor,
        decoded_bboxes: Tensor,
        objectness: Tensor,
        gt_instances: InstanceData,
        img_meta: dict,
        gt_instances_ignore: InstanceData | None = None,
    ) -> tuple:
        """Targets of one image.

        Args:
            priors (Tensor): (P, 4) as (x, y, sw, sh), cell corners.
            cls_preds (Tensor): (P, C) logits.
            decoded_bboxes (Tensor): (P, 5) decoded rboxes.
            objectness (Tensor): (P,) logits.
            gt_instances (InstanceData): ``bboxes`` (G, 5), ``labels`` (G,).

        Returns:
            tuple: foreground mask (P,) bool, cls targets (num_pos, C) (one-hot
            times IoU), obj targets (P, 1), bbox targets (num_pos, 5), L1
            targets (num_pos, 5 or 4), num_pos.
        """
        num_priors = priors.size(0)
        l1_dim = 5 if self.with_angle_l1 else 4
        gt_bboxes = get_box_tensor(gt_instances.bboxes)
        num_gts = gt_bboxes.size(0)
        if num_gts == 0:
            return (
                cls_preds.new_zeros(num_priors).bool(),
                cls_preds.new_zeros((0, self.num_classes)),
                cls_preds.new_zeros((num_priors, 1)),
                cls_preds.new_zeros((0, 5)),
                cls_preds.new_zeros((0, l1_dim)),
                0,
            )
        gt_bboxes = gt_bboxes.to(decoded_bboxes.dtype)
        gt_for_assign = InstanceData(bboxes=gt_bboxes, labels=gt_instances.labels)
        # the assigner sees cell-centre priors
        offset_priors = torch.cat([priors[:, :2] + priors[:, 2:] * 0.5, priors[:, 2:]], dim=-1)
        scores = cls_preds.sigmoid() * objectness.unsqueeze(1).sigmoid()
        pred_instances = InstanceData(
            bboxes=decoded_bboxes, scores=scores.sqrt_(), priors=offset_priors
        )
        assign_result = self.assigner.assign(pred_instances, gt_for_assign, gt_instances_ignore)
        sampling_result = self.sampler.sample(assign_result, pred_instances, gt_for_assign)
        pos_inds = sampling_result.pos_inds
        num_pos_per_img = pos_inds.size(0)

        pos_ious = assign_result.max_overlaps[pos_inds].to(cls_preds.dtype)
        cls_target = F.one_hot(sampling_result.pos_gt_labels.long(), self.num_classes).to(
            cls_preds.dtype
        ) * pos_ious.unsqueeze(-1)
        obj_target = torch.zeros_like(objectness).unsqueeze(-1)
        obj_target[pos_inds] = 1
        bbox_target = sampling_result.pos_gt_bboxes
        l1_target = cls_preds.new_zeros((num_pos_per_img, l1_dim))
        if self.use_l1:
            l1_target = self._get_l1_target(bbox_target, priors[pos_inds])
        foreground_mask = torch.zeros_like(objectness).to(torch.bool)
        foreground_mask[pos_inds] = True
        return (foreground_mask, cls_target, obj_target, bbox_target, l1_target, num_pos_per_img)

    def _get_l1_target(self, gt_bboxes: Tensor, priors: Tensor, eps: float = 1e-8) -> Tensor:
        """(num_pos, 5) GT rboxes, (num_pos, 4) corner priors ->
        (num_pos, 5) ``[(gx-px)/s, (gy-py)/s, log(gw/s+eps), log(gh/s+eps), gt/norm]``
        (4 columns without ``with_angle_l1``). GT angles are used as given."""
        xy = (gt_bboxes[:, :2] - priors[:, :2]) / priors[:, 2:]
        wh = torch.log(gt_bboxes[:, 2:4] / priors[:, 2:] + eps)
        columns = [xy, wh]
        if self.with_angle_l1:
            columns.append(gt_bboxes[:, 4:5] / self.angle_norm_factor)
        return torch.cat(columns, dim=-1)

    # ------------------------------------------------------------- prediction
    def decode_by_feat(
        self,
        cls_scores: Sequence[Tensor],
        bbox_preds: Sequence[Tensor],
        angle_preds: Sequence[Tensor],
        objectnesses: Sequence[Tensor],
    ) -> tuple[Tensor, Tensor]:
        """Rotated boxes and scores of every prior.

        Returns:
            tuple[Tensor, Tensor]: ``boxes`` (B, P, 5) as (cx, cy, w, h, t), t in
            ``angle_version``, network-input pixels; ``scores`` (B, P, num_classes) =
            sigmoid(cls) * sigmoid(obj).
        """
        if not len(cls_scores) == len(bbox_preds) == len(angle_preds) == len(objectnesses):
            raise ValueError(
                'RotatedYOLOXHead.decode_by_feat: the four output lists must '
                'have one entry per level'
            )
        priors = self.flat_priors(cls_scores)
        flat_cls = self.flatten_levels(cls_scores, self.cls_out_channels).float().sigmoid()
        flat_bbox = self.flatten_levels(bbox_preds, 4).float()
        flat_angle = self.flatten_levels(angle_preds, self.angle_coder.encode_size).float()
        flat_obj = self.flatten_levels(objectnesses, 1).float().sigmoid()
        return self._bbox_decode(priors, flat_bbox, flat_angle), flat_cls * flat_obj

    def select_candidates(self, boxes: Tensor, scores: Tensor, cfg: dict) -> InstanceData:
        """One label per prior (the best class), kept if its score >= ``cfg.score_thr``."""
        max_scores, labels = scores.max(1)
        valid = max_scores >= cfg.get('score_thr', 0.0)
        return InstanceData(
            bboxes=RotatedBoxes(boxes[valid]), scores=max_scores[valid], labels=labels[valid]
        )

    def select_candidates_batch(
        self, boxes: Tensor, scores: Tensor, cfg: dict
    ) -> list[InstanceData]:
        """:meth:`select_candidates` of (B, P, 5) boxes and (B, P, K) scores at once."""
        max_scores, labels = scores.max(-1)
        img_idxs, prior_idxs = (max_scores >= cfg.get('score_thr', 0.0)).nonzero().unbind(1)
        return self.split_by_image(
            img_idxs,
            boxes.size(0),
            boxes[img_idxs, prior_idxs],
            max_scores[img_idxs, prior_idxs],
            labels[img_idxs, prior_idxs],
        )
