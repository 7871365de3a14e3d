"""SimOTA assignment (YOLOX) for rotated boxes."""

import torch
from mmengine.structures import InstanceData
from torch import Tensor

from ai4rs.ops import points_in_rboxes
from ai4rs.registry import TASK_UTILS
from ai4rs.structures.bbox import get_box_tensor

from .assign_result import AssignResult

INF = 100000.0
EPS = 1.0e-7


def onehot_bce_cost(scores: Tensor, labels: Tensor) -> Tensor:
    """Summed binary cross-entropy of every score vector against every one-hot label.

    ``cost[v, g] = sum_c BCE(scores[v, c], onehot(labels[g])[c])``, with
    ``F.binary_cross_entropy``'s clamping of each log at -100, computed as
    ``sum_c -log(1 - p_c) + log(1 - p_y) - log(p_y)`` in O(V*C + V*G) instead of
    the O(V*G*C) of expanding both tensors (which dominated the assignment of
    dense images: 200 GT boxes, 15 classes).

    Args:
        scores (Tensor): (V, C) probabilities in [0, 1].
        labels (Tensor): (G,) class indices.

    Returns:
        Tensor: (V, G) costs.
    """
    neg_log_p = -torch.log(scores).clamp(min=-100)
    neg_log_not_p = -torch.log(1 - scores).clamp(min=-100)
    labels = labels.long()
    return neg_log_not_p.sum(-1, keepdim=True) - neg_log_not_p[:, labels] + neg_log_p[:, labels]


@TASK_UTILS.register_module()
class RotatedSimOTAAssigner:
    """SimOTA with a rotated in-box test and rotated IoU.

    Candidates are the priors whose point lies strictly inside some GT rbox,
    or inside the axis-aligned square of half-size ``center_radius * stride``
    around some GT centre. For candidates the cost is::

        cls_weight * BCE(sqrt(score), onehot) + iou_weight * -log(IoU + 1e-7)
        + 1e5 * [not (in the box and in the centre square)]

    Each GT takes its ``k = max(1, int(sum of its top-min(candidate_topk, N)
    IoUs))`` lowest-cost priors; a prior claimed by several GTs goes to its
    lowest-cost one.

    Args:
        center_radius (float): centre square half-size in strides. Defaults to 2.5.
        candidate_topk (int): IoUs summed for the dynamic k. Defaults to 10.
        iou_weight (float): weight of the IoU cost. Defaults to 3.0.
        cls_weight (float): weight of the classification cost. Defaults to 1.0.
        iou_calculator (dict): Defaults to ``dict(type='RBboxOverlaps2D')``.
    """

    def __init__(
        self,
        center_radius: float = 2.5,
        candidate_topk: int = 10,
        iou_weight: float = 3.0,
        cls_weight: float = 1.0,
        iou_calculator: dict = dict(type='RBboxOverlaps2D'),  # noqa: B006
    ) -> None:
        self.center_radius = center_radius
        self.candidate_topk = candidate_topk
        self.iou_weight = iou_weight
        self.cls_weight = cls_weight
        self.iou_calculator = TASK_UTILS.build(iou_calculator)

    def assign(
        self,
        pred_instances: InstanceData,
        gt_instances: InstanceData,
        gt_instances_ignore: InstanceData | None = None,
        **kwargs,
    ) -> AssignResult:
        """Assign GTs to priors.

        Args:
            pred_instances (InstanceData): ``priors`` (P, 4) as (x, y, sw, sh)
                (cell centres), ``bboxes`` (P, 5) decoded rboxes and ``scores``
                (P, C) probabilities.
            gt_instances (InstanceData): ``bboxes`` (G, 5) rboxes (Tensor or
                box object) and ``labels`` (G,).
            gt_instances_ignore: unused (SimOTA ignores nothing).

        Returns:
            AssignResult: ``gt_inds`` 1-based (0 = background), ``max_overlaps``
            the IoU with the assigned GT (-1e5 for unassigned candidates, 0
            when nothing is assigned), ``labels`` (-1 for background).
        """
        gt_bboxes = get_box_tensor(gt_instances.bboxes)
        gt_labels = gt_instances.labels
        num_gt = gt_bboxes.size(0)
        decoded_bboxes = pred_instances.bboxes
        pred_scores = pred_instances.scores
        priors = pred_instances.priors
        num_bboxes = decoded_bboxes.size(0)

        assigned_gt_inds = decoded_bboxes.new_full((num_bboxes,), 0, dtype=torch.long)
        if num_gt == 0 or num_bboxes == 0:
            return self._all_background(num_gt, assigned_gt_inds, decoded_bboxes)

        valid_mask, in_box_and_center = self.get_in_gt_and_in_center_info(priors, gt_bboxes)
        valid_bboxes = decoded_bboxes[valid_mask]
        valid_scores = pred_scores[valid_mask]
        num_valid = valid_bboxes.size(0)
        if num_valid == 0:
            return self._all_background(num_gt, assigned_gt_inds, decoded_bboxes)

        pairwise_ious = self.iou_calculator(valid_bboxes, gt_bboxes)
        iou_cost = -torch.log(pairwise_ious + EPS)
        with torch.autocast(device_type=valid_scores.device.type, enabled=False):
            # BCE in fp32: half precision overflows here
            cls_cost = onehot_bce_cost(valid_scores.float(), gt_labels).to(valid_scores.dtype)
        cost_matrix = (
            cls_cost * self.cls_weight + iou_cost * self.iou_weight + (~in_box_and_center) * INF
        )

        matched_ious, matched_gt_inds = self.dynamic_k_matching(
            cost_matrix, pairwise_ious, num_gt, valid_mask
        )
        assigned_gt_inds[valid_mask] = matched_gt_inds + 1
        assigned_labels = assigned_gt_inds.new_full((num_bboxes,), -1)
        assigned_labels[valid_mask] = gt_labels[matched_gt_inds].long()
        max_overlaps = assigned_gt_inds.new_full((num_bboxes,), -INF, dtype=torch.float32)
        max_overlaps[valid_mask] = matched_ious.float()
        return AssignResult(num_gt, assigned_gt_inds, max_overlaps, labels=assigned_labels)

    @staticmethod
    def _all_background(num_gt: int, gt_inds: Tensor, decoded_bboxes: Tensor) -> AssignResult:
        num_bboxes = gt_inds.numel()
        return AssignResult(
            num_gt,
            gt_inds,
            decoded_bboxes.new_zeros((num_bboxes,)),
            labels=gt_inds.new_full((num_bboxes,), -1),
        )

    def get_in_gt_and_in_center_info(
        self, priors: Tensor, gt_bboxes: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Candidate mask and the in-box-and-in-centre matrix.

        Args:
            priors (Tensor): (P, 4) as (x, y, stride_w, stride_h).
            gt_bboxes (Tensor): (G, 5) rboxes.

        Returns:
            tuple: (P,) bool, priors inside any box or any centre square;
            (num_candidates, G) bool, inside that box and its centre square.
        """
        is_in_gts = points_in_rboxes(priors[:, :2], gt_bboxes)  # strict, rotated
        # axis-aligned centre square, not rotated (as upstream)
        radius_x = self.center_radius * priors[:, 2:3]
        radius_y = self.center_radius * priors[:, 3:4]
        dx = (priors[:, 0:1] - gt_bboxes[None, :, 0]).abs()
        dy = (priors[:, 1:2] - gt_bboxes[None, :, 1]).abs()
        is_in_cts = (radius_x - dx > 0) & (radius_y - dy > 0)
        is_in_gts_or_centers = is_in_gts.any(dim=1) | is_in_cts.any(dim=1)
        is_in_boxes_and_centers = is_in_gts[is_in_gts_or_centers] & is_in_cts[is_in_gts_or_centers]
        return is_in_gts_or_centers, is_in_boxes_and_centers

    def dynamic_k_matching(
        self, cost: Tensor, pairwise_ious: Tensor, num_gt: int, valid_mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Dynamic-k matching on the candidates.

        Args:
            cost (Tensor): (V, G) matching cost of the V candidates.
            pairwise_ious (Tensor): (V, G) IoUs.
            num_gt (int): G.
            valid_mask (Tensor): (P,) candidate mask; updated IN PLACE to mark
                only the matched priors.

        Returns:
            tuple: (F,) IoU of each matched prior with its GT, (F,) its GT index.
        """
        matching_matrix = torch.zeros_like(cost, dtype=torch.uint8)
        candidate_topk = min(self.candidate_topk, pairwise_ious.size(0))
        topk_ious, _ = torch.topk(pairwise_ious, candidate_topk, dim=0)
        dynamic_ks = torch.clamp(topk_ious.sum(0).int(), min=1)
        # each GT takes its k lowest-cost candidates: one topk for the largest k,
        # then the first k rows of each column (no per-GT loop, no per-GT sync)
        max_k = int(dynamic_ks.max())
        _, pos_idx = torch.topk(cost, k=max_k, dim=0, largest=False)  # (max_k, G)
        take = torch.arange(max_k, device=cost.device)[:, None] < dynamic_ks[None]
        gt_cols = torch.arange(num_gt, device=cost.device).expand(max_k, -1)
        matching_matrix[pos_idx[take], gt_cols[take]] = 1
        multiple = matching_matrix.sum(1) > 1
        if multiple.any():
            cost_argmin = cost[multiple].argmin(dim=1)
            matching_matrix[multiple] = 0
            matching_matrix[multiple.nonzero().squeeze(1), cost_argmin] = 1
        fg_mask = matching_matrix.sum(1) > 0
        valid_mask[valid_mask.clone()] = fg_mask
        matched_gt_inds = matching_matrix[fg_mask].argmax(1)
        matched_ious = (matching_matrix * pairwise_ious).sum(1)[fg_mask]
        return matched_ious, matched_gt_inds
