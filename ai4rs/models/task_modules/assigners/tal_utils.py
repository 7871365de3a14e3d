"""Batched helpers of task-aligned assignment (mmyolo's ``assigners/utils.py`` semantics).

All work on padded per-image ground truth: (B, G, 4) boxes (x1, y1, x2, y2) against P priors,
giving (B, G, P) masks or overlaps.
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def select_candidates_in_gts(priors_points: Tensor, gt_bboxes: Tensor, eps: float = 1e-9) -> Tensor:
    """Whether each prior point lies strictly inside each ground-truth box.

    Args:
        priors_points (Tensor): (P, 2) prior points (x, y).
        gt_bboxes (Tensor): (B, G, 4) boxes (x1, y1, x2, y2).
        eps (float): a point counts as inside when its smallest distance to an edge is > eps.

    Returns:
        Tensor: (B, G, P), 1.0 inside and 0.0 outside, in the dtype of ``gt_bboxes``.
    """
    px = priors_points[:, 0][None, None]
    py = priors_points[:, 1][None, None]
    x1, y1, x2, y2 = (gt_bboxes[..., i, None] for i in range(4))
    nearest = torch.minimum(torch.minimum(px - x1, py - y1), torch.minimum(x2 - px, y2 - py))
    return (nearest > eps).to(gt_bboxes.dtype)


def select_highest_overlaps(
    pos_mask: Tensor, overlaps: Tensor, num_gt: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Resolve priors that are positive for several ground truths.

    Such a prior is given to the ground truth with the highest overlap with its prediction
    (the argmax over *all* ground truths of the image, as upstream).

    Args:
        pos_mask (Tensor): (B, G, P) 0/1 candidate mask.
        overlaps (Tensor): (B, G, P) overlaps of predictions with ground truths.
        num_gt (int): G.

    Returns:
        tuple: ``gt_idx_pre_prior`` (B, P) long (0 for priors without a ground truth),
        ``fg_mask_pre_prior`` (B, P) number of ground truths of each prior (0 or 1), and the
        resolved ``pos_mask`` (B, G, P).
    """
    fg_mask_pre_prior = pos_mask.sum(dim=-2)
    if fg_mask_pre_prior.max() > 1:
        mask_multi_gts = (fg_mask_pre_prior.unsqueeze(1) > 1).expand(-1, num_gt, -1)
        is_max_overlaps = F.one_hot(overlaps.argmax(dim=1), num_gt)
        is_max_overlaps = is_max_overlaps.permute(0, 2, 1).to(overlaps.dtype)
        pos_mask = torch.where(mask_multi_gts, is_max_overlaps, pos_mask)
        fg_mask_pre_prior = pos_mask.sum(dim=-2)
    gt_idx_pre_prior = pos_mask.argmax(dim=-2)
    return gt_idx_pre_prior, fg_mask_pre_prior, pos_mask


def yolov6_iou_calculator(bbox1: Tensor, bbox2: Tensor, eps: float = 1e-9) -> Tensor:
    """Plain IoU of every box of ``bbox1`` with every box of ``bbox2``, per image.

    Args:
        bbox1 (Tensor): (B, M1, 4) boxes (x1, y1, x2, y2).
        bbox2 (Tensor): (B, M2, 4) boxes.
        eps (float): added to the union.

    Returns:
        Tensor: (B, M1, M2) IoU.
    """
    b1 = bbox1.unsqueeze(2)
    b2 = bbox2.unsqueeze(1)
    overlap = (
        (torch.minimum(b1[..., 2:], b2[..., 2:]) - torch.maximum(b1[..., :2], b2[..., :2]))
        .clip(0)
        .prod(-1)
    )
    area1 = (b1[..., 2:] - b1[..., :2]).clip(0).prod(-1)
    area2 = (b2[..., 2:] - b2[..., :2]).clip(0).prod(-1)
    return overlap / (area1 + area2 - overlap + eps)
