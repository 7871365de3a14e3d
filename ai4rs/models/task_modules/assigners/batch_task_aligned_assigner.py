"""Task-aligned assignment (TOOD, https://arxiv.org/abs/2108.07755) for a padded batch.

mmyolo's ``BatchTaskAlignedAssigner`` (YOLOv6 / YOLOv8 / YOLO-World), same results, with the
memory held to a bounded number of (ground truth, prior) pairs per step.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ai4rs.registry import TASK_UTILS

from ...losses.iou_loss import bbox_overlaps
from .tal_utils import select_candidates_in_gts, select_highest_overlaps, yolov6_iou_calculator

# Images are assigned in groups holding at most this many (ground truth, prior) pairs (one
# image at least): every (B, G, P) intermediate stays below ~64 MB in float32.
MAX_PAIRS_PER_STEP = 1 << 24


@TASK_UTILS.register_module()
class BatchTaskAlignedAssigner(nn.Module):
    """Assign ground truths to the priors of a batch by the task-alignment metric.

    For each image, ground truth ``g`` and prior ``p``:

    1. ``t = s^alpha * u^beta`` where ``s`` is the predicted score of ``g``'s class at ``p``
       and ``u`` the overlap (IoU, or CIoU clamped at 0 with ``use_ciou``) of ``p``'s
       predicted box with ``g``;
    2. candidates of ``g``: the ``topk`` priors of largest ``t`` among those whose point lies
       inside ``g`` (padded ground truths have none);
    3. a prior that is a candidate of several ground truths keeps the one whose box overlaps
       its prediction most;
    4. targets of a positive prior: its ground truth's box and label; its class score target
       is ``max_g t(g, p) * max_p' u(g, p') / (max_p' t(g, p') + eps)`` over positive pairs
       (the alignment normalised per ground truth to the best overlap of that ground truth).

    Args:
        num_classes (int): number of classes.
        topk (int): candidates per ground truth. Defaults to 13.
        alpha (float): exponent of the score. Defaults to 1.0.
        beta (float): exponent of the overlap. Defaults to 6.0.
        eps (float): stabiliser of the normalisation. Defaults to 1e-7.
        use_ciou (bool): use CIoU (``bbox_overlaps``, xyxy) instead of IoU. Defaults to False.
    """

    def __init__(
        self,
        num_classes: int,
        topk: int = 13,
        alpha: float = 1.0,
        beta: float = 6.0,
        eps: float = 1e-7,
        use_ciou: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.topk = topk
        self.alpha = alpha
        self.beta = beta
        self.eps = eps
        self.use_ciou = use_ciou

    @torch.no_grad()
    def forward(
        self,
        pred_bboxes: Tensor,
        pred_scores: Tensor,
        priors: Tensor,
        gt_labels: Tensor,
        gt_bboxes: Tensor,
        pad_bbox_flag: Tensor,
    ) -> dict:
        """Assign a batch.

        Args:
            pred_bboxes (Tensor): (B, P, 4) predicted boxes (x1, y1, x2, y2).
            pred_scores (Tensor): (B, P, C) predicted scores (after sigmoid).
            priors (Tensor): (P, 2+) priors; columns 0, 1 are the points (x, y).
            gt_labels (Tensor): (B, G, 1) labels of the padded ground truths.
            gt_bboxes (Tensor): (B, G, 4) padded ground-truth boxes (x1, y1, x2, y2).
            pad_bbox_flag (Tensor): (B, G, 1) 1 for a real ground truth, 0 for padding.

        Returns:
            dict: ``assigned_labels`` (B, P) long (``num_classes`` where the batch has no
            ground truth; otherwise the label of the image's ground truth 0 for negatives, as
            upstream), ``assigned_bboxes`` (B, P, 4), ``assigned_scores`` (B, P, C) soft
            targets (0 for negatives), ``fg_mask_pre_prior`` (B, P) bool positives.
        """
        batch_size, num_priors = pred_scores.shape[:2]
        num_gt = gt_bboxes.size(1)
        if num_gt == 0:
            return dict(
                assigned_labels=gt_labels.new_full(
                    (batch_size, num_priors), self.num_classes, dtype=torch.long
                ),
                assigned_bboxes=gt_bboxes.new_zeros(pred_bboxes.shape),
                assigned_scores=gt_bboxes.new_zeros(pred_scores.shape),
                fg_mask_pre_prior=torch.zeros(
                    (batch_size, num_priors), dtype=torch.bool, device=pred_scores.device
                ),
            )
        points = priors[:, :2]
        step = max(1, MAX_PAIRS_PER_STEP // max(1, num_gt * num_priors))
        parts = [
            self._assign_images(
                pred_bboxes[i : i + step],
                pred_scores[i : i + step],
                points,
                gt_labels[i : i + step],
                gt_bboxes[i : i + step],
                pad_bbox_flag[i : i + step],
            )
            for i in range(0, batch_size, step)
        ]
        if len(parts) == 1:
            return parts[0]
        return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}

    def _assign_images(
        self,
        pred_bboxes: Tensor,
        pred_scores: Tensor,
        points: Tensor,
        gt_labels: Tensor,
        gt_bboxes: Tensor,
        pad_bbox_flag: Tensor,
    ) -> dict:
        """:meth:`forward` for a group of images (the steps are independent per image)."""
        batch_size, num_gt = gt_bboxes.shape[:2]
        pos_mask, alignment_metrics, overlaps = self.get_pos_mask(
            pred_bboxes,
            pred_scores,
            points,
            gt_labels,
            gt_bboxes,
            pad_bbox_flag,
            batch_size,
            num_gt,
        )
        assigned_gt_idxs, fg_mask_pre_prior, pos_mask = select_highest_overlaps(
            pos_mask, overlaps, num_gt
        )
        assigned_labels, assigned_bboxes, assigned_scores = self.get_targets(
            gt_labels, gt_bboxes, assigned_gt_idxs, fg_mask_pre_prior, batch_size, num_gt
        )

        alignment_metrics = alignment_metrics * pos_mask
        pos_align_metrics = alignment_metrics.amax(dim=-1, keepdim=True)
        pos_overlaps = (overlaps * pos_mask).amax(dim=-1, keepdim=True)
        norm_align_metric = (
            (alignment_metrics * pos_overlaps / (pos_align_metrics + self.eps))
            .amax(dim=-2)
            .unsqueeze(-1)
        )
        return dict(
            assigned_labels=assigned_labels,
            assigned_bboxes=assigned_bboxes,
            assigned_scores=assigned_scores * norm_align_metric,
            fg_mask_pre_prior=fg_mask_pre_prior.bool(),
        )

    def get_pos_mask(
        self,
        pred_bboxes: Tensor,
        pred_scores: Tensor,
        priors: Tensor,
        gt_labels: Tensor,
        gt_bboxes: Tensor,
        pad_bbox_flag: Tensor,
        batch_size: int,
        num_gt: int,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Candidate mask, alignment metrics and overlaps, each (B, G, P).

        ``priors`` here are the (P, 2) points.
        """
        alignment_metrics, overlaps = self.get_box_metrics(
            pred_bboxes, pred_scores, gt_labels, gt_bboxes, batch_size, num_gt
        )
        is_in_gts = select_candidates_in_gts(priors, gt_bboxes)
        topk_metric = self.select_topk_candidates(
            alignment_metrics * is_in_gts, topk_mask=pad_bbox_flag.expand(-1, -1, self.topk).bool()
        )
        pos_mask = topk_metric * is_in_gts * pad_bbox_flag
        return pos_mask, alignment_metrics, overlaps

    def get_box_metrics(
        self,
        pred_bboxes: Tensor,
        pred_scores: Tensor,
        gt_labels: Tensor,
        gt_bboxes: Tensor,
        batch_size: int,
        num_gt: int,
    ) -> tuple[Tensor, Tensor]:
        """Alignment metrics ``s^alpha * u^beta`` and overlaps ``u``, each (B, G, P)."""
        num_priors = pred_scores.size(1)
        labels = gt_labels.long().reshape(batch_size, num_gt, 1).expand(-1, -1, num_priors)
        # (B, G, P): score of each ground truth's class at each prior
        bbox_scores = pred_scores.permute(0, 2, 1).gather(1, labels)
        if self.use_ciou:
            overlaps = bbox_overlaps(
                pred_bboxes.unsqueeze(1),
                gt_bboxes.unsqueeze(2),
                iou_mode='ciou',
                bbox_format='xyxy',
            ).clamp(0)
        else:
            overlaps = yolov6_iou_calculator(gt_bboxes, pred_bboxes)
        alignment_metrics = bbox_scores.pow(self.alpha) * overlaps.pow(self.beta)
        return alignment_metrics, overlaps

    def select_topk_candidates(
        self,
        alignment_gt_metrics: Tensor,
        using_largest_topk: bool = True,
        topk_mask: Tensor | None = None,
    ) -> Tensor:
        """(B, G, P) 0/1 mask of the ``topk`` priors of each ground truth.

        ``topk_mask`` (B, G, topk) disables the picks of padded ground truths (their picks
        collapse on prior 0, which then counts more than once and is dropped, as upstream).
        Without it a ground truth keeps its picks only if its best metric is > eps.
        """
        num_priors = alignment_gt_metrics.size(-1)
        k = min(self.topk, num_priors)
        topk_metrics, topk_idxs = torch.topk(
            alignment_gt_metrics, k, dim=-1, largest=using_largest_topk
        )
        if topk_mask is None:
            topk_mask = (topk_metrics.amax(dim=-1, keepdim=True) > self.eps).expand(-1, -1, k)
        else:
            topk_mask = topk_mask[..., :k]
        topk_idxs = torch.where(topk_mask, topk_idxs, torch.zeros_like(topk_idxs))
        # how many times each prior was picked (a scatter instead of a (B, G, k, P) one-hot)
        is_in_topk = torch.zeros_like(alignment_gt_metrics, dtype=torch.int32)
        is_in_topk.scatter_add_(-1, topk_idxs, torch.ones_like(topk_idxs, dtype=torch.int32))
        is_in_topk = torch.where(is_in_topk > 1, torch.zeros_like(is_in_topk), is_in_topk)
        return is_in_topk.to(alignment_gt_metrics.dtype)

    def get_targets(
        self,
        gt_labels: Tensor,
        gt_bboxes: Tensor,
        assigned_gt_idxs: Tensor,
        fg_mask_pre_prior: Tensor,
        batch_size: int,
        num_gt: int,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Labels (B, P), boxes (B, P, D) and one-hot scores (B, P, C) of the assigned GTs.

        ``D = gt_bboxes.size(-1)``: 4 here, 5 for rotated boxes (the rotated subclass).
        """
        batch_ind = torch.arange(batch_size, dtype=torch.long, device=gt_labels.device)[:, None]
        flat_idxs = assigned_gt_idxs + batch_ind * num_gt
        assigned_labels = gt_labels.long().flatten()[flat_idxs]
        assigned_bboxes = gt_bboxes.reshape(-1, gt_bboxes.size(-1))[flat_idxs]
        assigned_labels[assigned_labels < 0] = 0
        assigned_scores = F.one_hot(assigned_labels, self.num_classes)
        assigned_scores = torch.where(
            fg_mask_pre_prior[:, :, None] > 0, assigned_scores, torch.zeros_like(assigned_scores)
        )
        return assigned_labels, assigned_bboxes, assigned_scores
