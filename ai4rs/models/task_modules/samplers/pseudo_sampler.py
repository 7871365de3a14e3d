"""Sampling that keeps every assigned prediction (no sampling), as YOLOX needs."""

import torch
from mmengine.structures import InstanceData
from torch import Tensor

from ai4rs.registry import TASK_UTILS
from ai4rs.structures.bbox import get_box_tensor

from ..assigners.assign_result import AssignResult


class SamplingResult:
    """Positive and negative predictions of one image.

    Attributes:
        pos_inds (LongTensor): (num_pos,) indices of positive predictions.
        neg_inds (LongTensor): (num_neg,) indices of negative predictions.
        pos_assigned_gt_inds (LongTensor): (num_pos,) 0-based GT index of each positive.
        pos_gt_bboxes (Tensor): (num_pos, box_dim) the GT box of each positive.
        pos_gt_labels (LongTensor): (num_pos,) the GT label of each positive.
        pos_priors, neg_priors (Tensor): priors of positives / negatives.
        num_gts (int): number of ground truths.
    """

    def __init__(
        self,
        pos_inds: Tensor,
        neg_inds: Tensor,
        priors: Tensor,
        gt_bboxes: Tensor,
        assign_result: AssignResult,
    ) -> None:
        self.pos_inds = pos_inds
        self.neg_inds = neg_inds
        self.num_pos = max(pos_inds.numel(), 1)
        self.num_neg = max(neg_inds.numel(), 1)
        self.pos_priors = priors[pos_inds]
        self.neg_priors = priors[neg_inds]
        self.num_gts = gt_bboxes.shape[0]
        self.pos_assigned_gt_inds = assign_result.gt_inds[pos_inds] - 1
        if gt_bboxes.numel() == 0:
            if self.pos_assigned_gt_inds.numel() != 0:
                raise ValueError('SamplingResult: positives assigned but there is no GT')
            self.pos_gt_bboxes = gt_bboxes.view(
                -1, gt_bboxes.shape[-1] if gt_bboxes.dim() > 1 else 4
            )
        else:
            self.pos_gt_bboxes = gt_bboxes[self.pos_assigned_gt_inds.long()]
        if assign_result.labels is not None:
            self.pos_gt_labels = assign_result.labels[pos_inds]
        else:
            self.pos_gt_labels = None

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(num_gts={self.num_gts}, '
            f'num_pos={self.pos_inds.numel()}, num_neg={self.neg_inds.numel()})'
        )


@TASK_UTILS.register_module()
class PseudoSampler:
    """Every prediction with ``gt_inds > 0`` is positive, every one with 0 negative."""

    def __init__(self, **kwargs) -> None:
        pass

    def sample(
        self,
        assign_result: AssignResult,
        pred_instances: InstanceData,
        gt_instances: InstanceData,
        *args,
        **kwargs,
    ) -> SamplingResult:
        gt_bboxes = get_box_tensor(gt_instances.bboxes)
        priors = pred_instances.priors
        pos_inds = torch.nonzero(assign_result.gt_inds > 0, as_tuple=False).squeeze(-1).unique()
        neg_inds = torch.nonzero(assign_result.gt_inds == 0, as_tuple=False).squeeze(-1).unique()
        return SamplingResult(pos_inds, neg_inds, priors, gt_bboxes, assign_result)
