"""Open-vocabulary oriented detection: YOLO-World's head with a rotated regression branch.

The image/text backbone and VL-PAN are YOLO-World v2's, unchanged. The head is
:class:`YOLOWorldHeadModule` (same ``cls_preds`` / ``cls_contrasts`` / ``reg_preds`` layers,
keys and init, so a YOLO-World v2 checkpoint loads into it) plus, per level, an angle branch
``ang_preds[i]``: ConvModule 3x3 -> ConvModule 3x3 (``max(in[0] // 4, angle_out_dim)``
channels, Ultralytics YOLOv8-OBB's width) -> Conv2d 1x1 to ``angle_out_dim``.

A prior at point ``p`` with stride ``s`` predicts the distances ``(l, t, r, b)`` (the
expectation of a ``reg_max``-bin distribution, as YOLOv8) from ``p`` to the four sides of its
box *in the box's own frame*, and an angle ``a`` (``angle_coder``; ``PseudoAngleCoder``: the
output is the angle in radians). The box is (``DistanceAnglePointCoder``, mmrotate's rotated
RTMDet and YOLOv8-OBB's decoding)::

    w = (l + r) s,  h = (t + b) s,  centre = p + R(a) ((r - l) / 2, (b - t) / 2) s

Training: task-aligned assignment with rotated IoU (``BatchRotatedTaskAlignedAssigner``), the
region-text BCE of YOLO-World, a rotated IoU loss (``RotatedIoULoss``) and DFL on the four
distances. The DFL targets are the ground truth's distances in the frame of the *predicted*
angle: the ground truth is first re-expressed as the equivalent rectangle (angle changed by a
multiple of 90 degrees, w and h swapped for odd multiples) whose angle is nearest the
prediction, so a box at the angle range's boundary (e.g. -90 vs 90 degrees) or a prediction that
chose the other side as its width is not pushed to a far but equivalent representation.
Inference: sigmoid region-text scores, YOLO-World's candidate selection, class-aware rotated
NMS (``test_cfg.nms.type='nms_rotated'``), boxes as :class:`RotatedBoxes`.

The angle branch's last convolution starts at zero weight and bias: a freshly loaded
YOLO-World checkpoint predicts angle 0, i.e. exactly the horizontal boxes of the checkpoint, and
training rotates them from there.
"""

import copy
from collections.abc import Sequence

import torch
from mmengine.structures import InstanceData
from torch import Tensor, nn

from ai4rs.registry import MODELS

from ..task_modules.coders.distance_angle_point_coder import equivalent_rbox_nearest
from .rotated_head_mixin import RotatedHeadMixin
from .yolo_world_head import YOLOWorldHead, YOLOWorldHeadModule


@MODELS.register_module()
class RotatedYOLOWorldHeadModule(YOLOWorldHeadModule):
    """:class:`YOLOWorldHeadModule` plus an angle branch per level (see the module docstring).

    Args:
        *args, **kwargs: those of :class:`YOLOWorldHeadModule`.
        angle_out_dim (int): angle channels (the angle coder's ``encode_size``). Defaults to 1.

    ``forward(img_feats, txt_feats, txt_masks=None)`` returns per-level lists ``cls_logits``
    (B, K, H, W), ``bbox_preds`` (B, 4, H, W) expected distances in stride units,
    ``angle_preds`` (B, angle_out_dim, H, W), and in training mode also ``bbox_dist_preds``
    (B, H * W, 4, reg_max).
    """

    def __init__(self, *args, angle_out_dim: int = 1, **kwargs) -> None:
        self.angle_out_dim = angle_out_dim
        super().__init__(*args, **kwargs)

    def _init_layers(self) -> None:
        self.ang_preds = nn.ModuleList()
        ang_channels = max(self.in_channels[0] // 4, self.angle_out_dim)
        for in_ch in self.in_channels:
            self.ang_preds.append(
                nn.Sequential(
                    self._conv(in_ch, ang_channels),
                    self._conv(ang_channels, ang_channels),
                    nn.Conv2d(ang_channels, self.angle_out_dim, kernel_size=1),
                )
            )
        # built after ang_preds so that freeze_all (in the parent) covers them too
        super()._init_layers()

    def init_weights(self, prior_prob: float = 0.01) -> None:
        """YOLO-World's init, then the angle branch's last conv at zero (angle 0 at start)."""
        super().init_weights(prior_prob)
        for ang_pred in self.ang_preds:
            nn.init.zeros_(ang_pred[-1].weight)
            nn.init.zeros_(ang_pred[-1].bias)

    def level_branches(self) -> tuple[nn.ModuleList, ...]:
        """YOLO-World's per-level modules, then the angle branch."""
        return *super().level_branches(), self.ang_preds

    def forward_single(
        self,
        img_feat: Tensor,
        txt_feat: Tensor,
        txt_masks: Tensor | None,
        cls_pred: nn.Module,
        reg_pred: nn.Module,
        cls_contrast: nn.Module,
        ang_pred: nn.Module,
    ) -> tuple:
        """One level: logits (B, K, H, W), distances (B, 4, H, W), angles (B, A, H, W)
        [, distribution logits (B, H * W, 4, reg_max) in training]."""
        cls_logit = self.region_text_logits(img_feat, txt_feat, txt_masks, cls_pred, cls_contrast)
        bbox_preds, bbox_dist_preds = self.expected_distances(img_feat, reg_pred)
        angle_preds = ang_pred(img_feat)
        if self.training:
            return cls_logit, bbox_preds, angle_preds, bbox_dist_preds
        return cls_logit, bbox_preds, angle_preds


@MODELS.register_module()
class RotatedYOLOWorldHead(RotatedHeadMixin, YOLOWorldHead):
    """Open-vocabulary rotated head: YOLO-World's region-text classification, rotated boxes.

    Losses (``S`` = the sum of the assigned soft scores, at least 1; as :class:`YOLOWorldHead`
    with the rotated pieces):

    - ``loss_cls``: element-wise sigmoid BCE against the soft scores (padding texts masked) / S;
    - ``loss_bbox``: ``loss_bbox`` (rotated IoU loss) of positives, weighted by their score
      sums, / S;
    - ``loss_dfl``: DFL of positives against their distances in the predicted angle's frame
      (module docstring), clamped to ``reg_max - 1 - 0.01``, same weights, averaged by S;

    each times ``num_imgs * world_size`` (upstream YOLO-World's normalisation).

    Args:
        head_module (dict): :class:`RotatedYOLOWorldHeadModule` config.
        prior_generator (dict): Defaults to ``MlvlPointGenerator(offset=0.5, strides=[8, 16,
            32])``.
        bbox_coder (dict): Defaults to ``DistanceAnglePointCoder(angle_version='le90')``.
        angle_version (str): 'le90', 'le135' or 'oc'. Defaults to 'le90'.
        angle_coder (dict): Defaults to ``PseudoAngleCoder``.
        loss_cls (dict): Defaults to sigmoid ``CrossEntropyLoss`` (reduction 'none', 0.5).
        loss_bbox (dict): Defaults to ``RotatedIoULoss`` (linear: 1 - IoU, reduction 'sum',
            7.5: YOLOv8's CIoU weight).
        loss_dfl (dict): Defaults to ``DistributionFocalLoss`` (mean, 1.5 / 4).
        train_cfg (dict, optional): ``assigner`` (``BatchRotatedTaskAlignedAssigner``).
        test_cfg (dict, optional): ``multi_label``, ``score_thr``, ``nms_pre``, ``nms``
            (``type='nms_rotated'``), ``max_per_img``.
        init_cfg (dict, optional): mmengine init config.
        world_size (int): processes the losses are scaled by; -1 = the current world size.
    """

    def __init__(
        self,
        head_module: dict,
        prior_generator: dict = dict(  # noqa: B006
            type='MlvlPointGenerator', offset=0.5, strides=[8, 16, 32]
        ),
        bbox_coder: dict = dict(type='DistanceAnglePointCoder', angle_version='le90'),  # noqa: B006
        angle_version: str = 'le90',
        angle_coder: dict = dict(type='PseudoAngleCoder'),  # noqa: B006
        loss_cls: dict = dict(  # noqa: B006
            type='CrossEntropyLoss', use_sigmoid=True, reduction='none', loss_weight=0.5
        ),
        loss_bbox: dict = dict(  # noqa: B006
            type='RotatedIoULoss', mode='linear', reduction='sum', loss_weight=7.5
        ),
        loss_dfl: dict = dict(  # noqa: B006
            type='DistributionFocalLoss', reduction='mean', loss_weight=1.5 / 4
        ),
        train_cfg: dict | None = None,
        test_cfg: dict | None = None,
        init_cfg: dict | None = None,
        world_size: int = -1,
    ) -> None:
        super().__init__(
            head_module=head_module,
            prior_generator=prior_generator,
            bbox_coder=bbox_coder,
            loss_cls=loss_cls,
            loss_bbox=loss_bbox,
            loss_dfl=loss_dfl,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            init_cfg=init_cfg,
            world_size=world_size,
        )
        self.init_angle(angle_version, angle_coder)
        angle_out_dim = getattr(self.head_module, 'angle_out_dim', None)
        if angle_out_dim != self.angle_coder.encode_size:
            raise ValueError(
                f'RotatedYOLOWorldHead: the head module predicts {angle_out_dim} angle '
                f'channels but the angle coder needs {self.angle_coder.encode_size} '
                '(set head_module.angle_out_dim)'
            )
        coder_version = getattr(self.bbox_coder, 'angle_version', angle_version)
        if coder_version != angle_version:
            raise ValueError(
                f'RotatedYOLOWorldHead: bbox_coder.angle_version={coder_version!r} differs '
                f'from angle_version={angle_version!r}'
            )

    # ---------------------------------------------------------------- decoding
    def decode_rboxes(self, priors: Tensor, distances: Tensor, angles: Tensor) -> Tensor:
        """(P, 4) priors (x, y, stride, stride), (B, P, 4) distances in stride units,
        (B, P, 1) angles in radians -> (B, P, 5) rboxes (cx, cy, w, h, t) in input pixels, t
        wrapped into ``angle_version``."""
        return self.bbox_coder.decode(priors[:, :2], distances * priors[:, 2:3], angles)

    def decode_by_feat(
        self,
        cls_scores: Sequence[Tensor],
        bbox_preds: Sequence[Tensor],
        angle_preds: Sequence[Tensor],
    ) -> tuple[Tensor, Tensor]:
        """Rotated boxes and scores of every prior.

        Returns:
            tuple[Tensor, Tensor]: ``boxes`` (B, P, 5) as (cx, cy, w, h, t), t in
            ``angle_version``, network-input pixels; ``scores`` (B, P, K) sigmoid region-text
            scores.
        """
        if not len(cls_scores) == len(bbox_preds) == len(angle_preds):
            raise ValueError(
                'RotatedYOLOWorldHead.decode_by_feat: one output of each kind per level'
            )
        num_classes = cls_scores[0].size(1)
        priors = self.flat_priors(cls_scores, with_stride=True)
        scores = self.flatten_levels(cls_scores, num_classes).sigmoid()
        distances = self.flatten_levels(bbox_preds, 4).to(priors.dtype)
        angles = self.decode_angle(
            self.flatten_levels(angle_preds, self.angle_coder.encode_size).to(priors.dtype),
            normalise=False,
        )
        return self.decode_rboxes(priors, distances, angles), scores

    def predict_by_feat(
        self,
        cls_scores: Sequence[Tensor],
        bbox_preds: Sequence[Tensor],
        angle_preds: Sequence[Tensor],
        batch_img_metas: Sequence[dict] | None = None,
        cfg: dict | None = None,
        rescale: bool = True,
        with_nms: bool = True,
    ) -> list[InstanceData]:
        """Detections per image from the eval-mode outputs (``bboxes`` RotatedBoxes (n, 5),
        ``scores`` (n,), ``labels`` (n,) text indices)."""
        if batch_img_metas is None:
            raise ValueError('RotatedYOLOWorldHead.predict_by_feat: batch_img_metas is required')
        return super(YOLOWorldHead, self).predict_by_feat(
            cls_scores,
            bbox_preds,
            angle_preds,
            batch_img_metas=batch_img_metas,
            cfg=copy.deepcopy(self.test_cfg if cfg is None else cfg),
            rescale=rescale,
            with_nms=with_nms,
        )

    # ---------------------------------------------------------------- training
    def loss_by_feat(
        self,
        cls_scores: Sequence[Tensor],
        bbox_preds: Sequence[Tensor],
        angle_preds: Sequence[Tensor],
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
            angle_preds (Sequence[Tensor]): per level (B, A, H, W) raw angle outputs.
            bbox_dist_preds (Sequence[Tensor]): per level (B, H * W, 4, reg_max) logits.
            batch_gt_instances: one ``InstanceData`` per image with ``bboxes``
                (``RotatedBoxes`` (n, 5) in input pixels) and ``labels`` (n,) text indices,
                or (N, 7) rows ``[img_idx, label, cx, cy, w, h, t]``.
            batch_img_metas (Sequence[dict]): one per image (only their number is used).
            batch_gt_instances_ignore: unused (as YOLO-World).
            batch_text_masks (Tensor, optional): (B, K); padding texts get no class loss.

        Returns:
            dict: ``loss_cls``, ``loss_bbox``, ``loss_dfl`` (scalars).
        """
        num_imgs = len(batch_img_metas)
        reg_max = self.head_module.reg_max
        num_classes, priors, gt_labels, gt_bboxes = self.loss_targets_setup(
            cls_scores, batch_gt_instances, num_imgs, box_dim=5
        )
        stride_tensor = priors[:, 2:3]
        # a zero row is padding (gt_instances_preprocess); real boxes have w, h > 0
        pad_bbox_flag = ((gt_bboxes[..., 2] > 0) & (gt_bboxes[..., 3] > 0)).float().unsqueeze(-1)

        flatten_cls_preds = self.flatten_levels(cls_scores, num_classes).float()
        flatten_distances = self.flatten_levels(bbox_preds, 4).float()
        flatten_angles = self.decode_angle(
            self.flatten_levels(angle_preds, self.angle_coder.encode_size).float(),
            normalise=False,
        )
        flatten_dist_preds = self.flatten_dist_logits(bbox_dist_preds, num_imgs)
        flatten_pred_rboxes = self.decode_rboxes(priors, flatten_distances, flatten_angles)

        assigned_result, assigned_scores_sum, loss_cls = self.assign_and_classify(
            flatten_pred_rboxes,
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

        if bool(fg_mask_pre_prior.any()):
            bbox_weight = assigned_scores.sum(-1)[fg_mask_pre_prior]
            pred_pos = flatten_pred_rboxes[fg_mask_pre_prior]
            target_pos = assigned_bboxes[fg_mask_pre_prior]
            loss_bbox = (
                self.loss_bbox(pred_pos, target_pos, weight=bbox_weight) / assigned_scores_sum
            )
            # DFL: the target's distances in the frame of the predicted angle, stride units
            stride_pos = stride_tensor.expand(num_imgs, -1, -1)[fg_mask_pre_prior]
            points_pos = (priors[:, :2] / stride_tensor).expand(num_imgs, -1, -1)[fg_mask_pre_prior]
            angle_pos = flatten_angles[fg_mask_pre_prior].detach()
            target_aligned = equivalent_rbox_nearest(target_pos, angle_pos[:, 0])
            target_aligned = torch.cat(
                [target_aligned[:, :4] / stride_pos, target_aligned[:, 4:]], dim=-1
            )
            target_ltrb = self.bbox_coder.encode(
                points_pos, target_aligned, max_dis=reg_max - 1, eps=0.01
            )
            loss_dfl = self.distribution_focal_loss(
                flatten_dist_preds[fg_mask_pre_prior], target_ltrb, bbox_weight, assigned_scores_sum
            )
        else:
            loss_bbox = flatten_pred_rboxes.sum() * 0
            loss_dfl = flatten_pred_rboxes.sum() * 0
        return self.scale_losses(num_imgs, loss_cls, loss_bbox, loss_dfl)
