"""Task-aligned assignment of rotated ground truths for a padded batch.

:class:`BatchTaskAlignedAssigner` with rotated boxes ``(cx, cy, w, h, t)`` (``t`` in radians,
clockwise in image coordinates): candidates are the prior points strictly inside a rotated
ground truth, overlaps are rotated IoU, computed only for those candidate pairs.
"""

import torch
from torch import Tensor

from ai4rs.ops import box_iou_rotated
from ai4rs.registry import TASK_UTILS

from .batch_task_aligned_assigner import BatchTaskAlignedAssigner


def select_candidates_in_rotated_gts(
    priors_points: Tensor, gt_bboxes: Tensor, eps: float = 1e-9
) -> Tensor:
    """Whether each prior point lies strictly inside each rotated ground-truth box.

    The point ``p`` in the frame of box ``(c, w, h, t)`` is ``u = (p - c) . (cos t, sin t)``,
    ``v = (p - c) . (-sin t, cos t)``; its smallest distance to an edge is
    ``min(w/2 - |u|, h/2 - |v|)`` and it is inside when that is ``> eps`` (as the horizontal
    :func:`select_candidates_in_gts`: a point on an edge is outside; for ``t = 0`` the two
    agree). Zero-size (padded) boxes contain no point.

    Args:
        priors_points (Tensor): (P, 2) prior points (x, y).
        gt_bboxes (Tensor): (B, G, 5) boxes (cx, cy, w, h, t).
        eps (float): margin of the inside test.

    Returns:
        Tensor: (B, G, P), 1.0 inside and 0.0 outside, in the dtype of ``gt_bboxes``.
    """
    px = priors_points[:, 0][None, None]
    py = priors_points[:, 1][None, None]
    cx, cy, w, h, t = (gt_bboxes[..., i, None] for i in range(5))
    cos, sin = torch.cos(t), torch.sin(t)
    dx, dy = px - cx, py - cy
    u = dx * cos + dy * sin
    v = dy * cos - dx * sin
    nearest = torch.minimum(w / 2 - u.abs(), h / 2 - v.abs())
    return (nearest > eps).to(gt_bboxes.dtype)


def rotated_overlaps_on_pairs(pred_bboxes: Tensor, gt_bboxes: Tensor, pair_mask: Tensor) -> Tensor:
    """Rotated IoU of ground truths with predicted boxes, on the masked pairs only.

    Args:
        pred_bboxes (Tensor): (B, P, 5) predicted boxes (cx, cy, w, h, t).
        gt_bboxes (Tensor): (B, G, 5) ground-truth boxes.
        pair_mask (Tensor): (B, G, P) bool, the (ground truth, prior) pairs to evaluate; no
            other pair is passed to the IoU op (padded ground truths must have none).

    Returns:
        Tensor: (B, G, P) IoU on the masked pairs, 0 elsewhere, in the promoted dtype.
    """
    dtype = torch.promote_types(pred_bboxes.dtype, gt_bboxes.dtype)
    overlaps = gt_bboxes.new_zeros(pair_mask.shape, dtype=dtype)
    b, g, p = pair_mask.nonzero(as_tuple=True)
    if b.numel():
        overlaps[b, g, p] = box_iou_rotated(gt_bboxes[b, g], pred_bboxes[b, p], aligned=True).to(
            dtype
        )
    return overlaps


@TASK_UTILS.register_module()
class BatchRotatedTaskAlignedAssigner(BatchTaskAlignedAssigner):
    """Assign rotated ground truths to the priors of a batch by the task-alignment metric.

    The steps of :class:`BatchTaskAlignedAssigner` with rotated boxes:

    1. candidates of ``g``: the priors whose point is strictly inside the rotated ``g``
       (:func:`select_candidates_in_rotated_gts`; padded ground truths have none);
    2. ``u(g, p)``: the rotated IoU (:func:`ai4rs.ops.box_iou_rotated`) of ``p``'s predicted box
       with ``g``, evaluated only on candidate pairs (:func:`rotated_overlaps_on_pairs`), 0 on the
       others. Every other pair is masked out downstream, so the metrics, top-k candidates and
       score targets equal those of a dense computation, at the cost of the inside pairs only
       (e.g. 21,504 priors x 100 ground truths of a 1024-px image);
    3. ``t = s^alpha * u^beta``, the ``topk`` candidates of largest ``t`` per ground truth, and
       the targets, as the parent.

    The one deviation from a dense computation: a prior that is a candidate of several ground
    truths goes to the ground truth of highest IoU *among those containing its point* (ties,
    e.g. all IoUs 0, go to the first of them); the dense computation would take the argmax of
    the IoU over all ground truths of the image, possibly one not containing the point (and,
    when all are 0, ground truth 0, maybe padding).

    Args:
        num_classes (int): number of classes.
        topk (int): candidates per ground truth. Defaults to 13.
        alpha (float): exponent of the score. Defaults to 1.0.
        beta (float): exponent of the overlap. Defaults to 6.0.
        eps (float): stabiliser of the normalisation. Defaults to 1e-7.
        use_ciou (bool): must be False (there is no rotated CIoU). Defaults to False.
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
        if use_ciou:
            raise ValueError(
                'BatchRotatedTaskAlignedAssigner: use_ciou=True is not supported (no rotated '
                'CIoU); the overlaps are rotated IoU'
            )
        super().__init__(num_classes, topk, alpha, beta, eps, use_ciou)

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
            pred_bboxes (Tensor): (B, P, 5) predicted boxes (cx, cy, w, h, t).
            pred_scores (Tensor): (B, P, C) predicted scores (after sigmoid).
            priors (Tensor): (P, 2+) priors; columns 0, 1 are the points (x, y).
            gt_labels (Tensor): (B, G, 1) labels of the padded ground truths.
            gt_bboxes (Tensor): (B, G, 5) padded ground-truth boxes (cx, cy, w, h, t).
            pad_bbox_flag (Tensor): (B, G, 1) 1 for a real ground truth, 0 for padding.

        Returns:
            dict: as :meth:`BatchTaskAlignedAssigner.forward`, with ``assigned_bboxes``
            (B, P, 5) rotated boxes.
        """
        batch_size, num_priors = pred_scores.shape[:2]
        if pred_bboxes.dim() != 3 or pred_bboxes.shape != (batch_size, num_priors, 5):
            raise ValueError(
                'BatchRotatedTaskAlignedAssigner: pred_bboxes must be (B, P, 5) = '
                f'({batch_size}, {num_priors}, 5) (cx, cy, w, h, t), but got '
                f'{tuple(pred_bboxes.shape)}'
            )
        if gt_bboxes.dim() != 3 or gt_bboxes.size(0) != batch_size or gt_bboxes.size(-1) != 5:
            raise ValueError(
                'BatchRotatedTaskAlignedAssigner: gt_bboxes must be (B, G, 5) with '
                f'B = {batch_size} (cx, cy, w, h, t), but got {tuple(gt_bboxes.shape)}'
            )
        return super().forward(
            pred_bboxes, pred_scores, priors, gt_labels, gt_bboxes, pad_bbox_flag
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

        ``priors`` here are the (P, 2) points. The returned overlaps are the IoU on candidate
        pairs and -1 on the others (never a real IoU), so that the parent's
        ``select_highest_overlaps`` (an argmax over ground truths) resolves a prior claimed by
        several ground truths among those containing it; wherever the parent reads overlaps
        otherwise they are multiplied by the positive mask, so -1 there counts as 0.
        """
        is_in_gts = select_candidates_in_rotated_gts(priors, gt_bboxes) * pad_bbox_flag
        alignment_metrics, overlaps = self.get_box_metrics(
            pred_bboxes, pred_scores, gt_labels, gt_bboxes, batch_size, num_gt, is_in_gts > 0
        )
        topk_metric = self.select_topk_candidates(
            alignment_metrics * is_in_gts, topk_mask=pad_bbox_flag.expand(-1, -1, self.topk).bool()
        )
        pos_mask = topk_metric * is_in_gts
        overlaps = torch.where(is_in_gts > 0, overlaps, torch.full_like(overlaps, -1))
        return pos_mask, alignment_metrics, overlaps

    def get_box_metrics(
        self,
        pred_bboxes: Tensor,
        pred_scores: Tensor,
        gt_labels: Tensor,
        gt_bboxes: Tensor,
        batch_size: int,
        num_gt: int,
        pair_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Alignment metrics ``s^alpha * u^beta`` and rotated IoU ``u``, each (B, G, P).

        Args:
            pair_mask (Tensor, optional): (B, G, P) bool, the pairs whose IoU is computed
                (0 elsewhere). None: every pair of a ground truth with a positive area.
        """
        num_priors = pred_scores.size(1)
        labels = gt_labels.long().reshape(batch_size, num_gt, 1).expand(-1, -1, num_priors)
        # (B, G, P): score of each ground truth's class at each prior
        bbox_scores = pred_scores.permute(0, 2, 1).gather(1, labels)
        if pair_mask is None:
            has_area = (gt_bboxes[..., 2] > 0) & (gt_bboxes[..., 3] > 0)
            pair_mask = has_area[..., None].expand(-1, -1, num_priors)
        overlaps = rotated_overlaps_on_pairs(pred_bboxes, gt_bboxes, pair_mask)
        alignment_metrics = bbox_scores.pow(self.alpha) * overlaps.pow(self.beta)
        return alignment_metrics, overlaps
