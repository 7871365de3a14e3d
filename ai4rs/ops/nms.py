"""Non-maximum suppression: horizontal (torchvision), rotated (pure PyTorch) and batched.

Rotated NMS here is exact greedy NMS that never evaluates the IoUs a greedy loop would skip:

1. boxes are ranked by score (descending; ties keep input order);
2. ranks are processed in blocks: 64 ranks, then blocks doubling up to 256 while each block
   suppresses at least as many later boxes as it has ranks, else 256 at once
   (:func:`next_block_size`: on clustered output the best boxes clear their clusters before
   the many boxes of the next ranks look for neighbours). Only the boxes of the block still
   alive (not suppressed by a kept box of an earlier block) look for neighbours, and only
   among lower-ranked boxes still alive: an exact sort-and-sweep on their axis-aligned bounding
   boxes (:func:`overlap_pairs`), then the label check, then a cheap IoU upper bound from the
   AABB intersection and the areas;
3. the exact rotated IoU is computed for the remaining pairs; edges with IoU > thr inside the
   block are resolved by the greedy rule on the host (:func:`greedy_from_edges`, one step per
   suppressing box), and the kept boxes of the block remove their later neighbours.

The result is identical to the textbook greedy loop, but suppressed boxes cost almost nothing,
which is what makes clustered detector output (many near-duplicates) fast.
"""

import numpy as np
import torch
from torch import Tensor

from .box_iou_rotated import _pair_overlaps
from .cpu_tasks import limited_cpu_threads
from .rbox_geometry import (
    SortedAABBs,
    check_rboxes,
    compute_dtype,
    overlap_pairs,
    rbox_aabbs,
)

# ranks resolved per step of the greedy pass
_RANK_BLOCK = 256
# ranks of the first step (then next_block_size: doubling, or _RANK_BLOCK at once)
_FIRST_BLOCK = 64


def nms(
    boxes: Tensor | np.ndarray,
    scores: Tensor | np.ndarray,
    iou_threshold: float,
    offset: int = 0,
    score_threshold: float = 0,
    max_num: int = -1,
) -> tuple[Tensor | np.ndarray, Tensor | np.ndarray]:
    """Horizontal NMS with mmcv's signature, computed by ``torchvision.ops.nms``.

    A box is suppressed when its IoU with a kept, higher-scored box is > ``iou_threshold``.

    Args:
        boxes (Tensor | ndarray): (N, 4) boxes ``(x1, y1, x2, y2)``.
        scores (Tensor | ndarray): (N,) scores.
        iou_threshold (float): IoU threshold.
        offset (int): 0, or 1 for the legacy ``x2 - x1 + 1`` width convention.
        score_threshold (float): boxes with a score <= this are dropped first (when > 0).
        max_num (int): keep at most this many boxes (all when <= 0).

    Returns:
        tuple: ``dets`` (K, 5) = boxes + score, and ``inds`` (K,) kept indices in
        descending score order; numpy in, numpy out.
    """
    import torchvision

    is_numpy = isinstance(boxes, np.ndarray)
    boxes_t = torch.as_tensor(boxes)
    scores_t = torch.as_tensor(scores, device=boxes_t.device)
    if boxes_t.numel() and (boxes_t.dim() != 2 or boxes_t.size(1) != 4):
        raise ValueError(f'boxes must have shape (N, 4), but got {tuple(boxes_t.shape)}')
    boxes_t = boxes_t.reshape(-1, 4)
    if scores_t.shape != (boxes_t.size(0),):
        raise ValueError(
            f'scores must have shape ({boxes_t.size(0)},), but got {tuple(scores_t.shape)}'
        )
    if offset not in (0, 1):
        raise ValueError(f'offset must be 0 or 1, but got {offset}')
    valid_inds = None
    cand_boxes, cand_scores = boxes_t, scores_t
    if score_threshold > 0:
        valid = scores_t > score_threshold
        valid_inds = valid.nonzero()[:, 0]
        cand_boxes, cand_scores = boxes_t[valid_inds], scores_t[valid_inds]
    nms_boxes = (
        cand_boxes.detach().float()
        if cand_boxes.dtype not in (torch.float32, torch.float64)
        else cand_boxes.detach()
    )
    if offset:
        nms_boxes = nms_boxes + nms_boxes.new_tensor([0, 0, 1, 1])
    inds = torchvision.ops.nms(
        nms_boxes, cand_scores.detach().to(nms_boxes.dtype), float(iou_threshold)
    )
    if max_num > 0:
        inds = inds[:max_num]
    if valid_inds is not None:
        inds = valid_inds[inds]
    dets = torch.cat([boxes_t[inds], scores_t[inds].reshape(-1, 1).to(boxes_t.dtype)], dim=1)
    if is_numpy:
        return dets.cpu().numpy(), inds.cpu().numpy()
    return dets, inds


def nms_rotated(
    dets: Tensor,
    scores: Tensor,
    iou_threshold: float,
    labels: Tensor | None = None,
    clockwise: bool = True,
) -> tuple[Tensor, Tensor]:
    """Greedy NMS of rotated boxes (exact rotated IoU), class-aware when labels are given.

    Rule: boxes are visited in descending score order (equal scores keep their input
    order); a box is suppressed when its IoU with an already kept box is strictly greater
    than ``iou_threshold`` (mmcv's CUDA kernel uses ``>``, its CPU kernel ``>=``; here it is
    always ``>``). With ``labels``, boxes of different labels never suppress each other
    (mmcv's CPU kernel ignores labels; here they are honoured on every device). Boxes that
    do not overlap never suppress each other, so ``iou_threshold`` must be >= 0.

    Args:
        dets (Tensor): (N, 5) boxes ``(cx, cy, w, h, t)``, ``t`` in radians.
        scores (Tensor): (N,) scores.
        iou_threshold (float): IoU threshold.
        labels (Tensor, optional): (N,) integer labels.
        clockwise (bool): Whether angles are clockwise (mmcv's default); False negates them.

    Returns:
        tuple[Tensor, Tensor]: ``dets`` (K, 6) = kept boxes + score column, and ``keep``
        (K,) long indices into the input, in descending score order. Empty input gives
        (0, 6) and (0,) tensors (mmcv returns ``None`` for ``keep`` there).
    """
    dets = check_rboxes(dets, 'dets')
    n = dets.size(0)
    if not isinstance(scores, Tensor) or scores.shape != (n,):
        raise ValueError(
            f'scores must be a tensor of shape ({n},), but got '
            f'{getattr(scores, "shape", type(scores))}'
        )
    if labels is not None and (not isinstance(labels, Tensor) or labels.shape != (n,)):
        raise ValueError(
            f'labels must be None or a tensor of shape ({n},), but got '
            f'{getattr(labels, "shape", type(labels))}'
        )
    iou_threshold = float(iou_threshold)
    if not iou_threshold >= 0:
        raise ValueError(f'iou_threshold must be >= 0, but got {iou_threshold}')
    # a sequence of small steps: one OpenMP thread on the CPU (in a 2-thread process on 2 cores,
    # calls alternating with and without the cap: 26-28 vs 33-42 ms idle, 40 vs 53 ms beside two
    # busy processes, on benchmark_ops.py's 5000 clustered boxes)
    with limited_cpu_threads(dets.device, 1):
        keep = _nms_rotated_keep(dets, scores, iou_threshold, labels, clockwise)
    out = torch.cat([dets[keep], scores[keep].reshape(-1, 1).to(dets.dtype)], dim=1)
    return out, keep


@torch.no_grad()
def _nms_rotated_keep(
    dets: Tensor,
    scores: Tensor,
    iou_threshold: float,
    labels: Tensor | None,
    clockwise: bool,
    block: int = _RANK_BLOCK,
) -> Tensor:
    """Kept indices, best first. Boxes are processed in blocks of ranks (``_FIRST_BLOCK``,
    then :func:`next_block_size`, at most ``block``); only the boxes still alive when their
    block is reached look for neighbours, and only among boxes still alive, so suppressed
    boxes cost (almost) nothing."""
    n = dets.size(0)
    device = dets.device
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=device)
    order = torch.argsort(scores.detach(), descending=True, stable=True)
    boxes = dets.detach().to(compute_dtype(dets))[order]  # row index == rank from here on
    if not clockwise:
        boxes = boxes * boxes.new_tensor([1.0, 1.0, 1.0, 1.0, -1.0])
    groups = labels[order] if labels is not None else None
    lo, hi = rbox_aabbs(boxes)
    targets = SortedAABBs(lo, hi)
    areas = boxes[:, 2] * boxes[:, 3]
    removed = torch.zeros(n, dtype=torch.bool, device=device)
    r0, size = 0, min(_FIRST_BLOCK, block)
    while r0 < n:
        r1 = min(n, r0 + size)
        later = _suppress_from_block(
            r0, r1, boxes, lo, hi, areas, targets, groups, removed, iou_threshold
        )
        r0, size = r1, next_block_size(size, block, later)
    return order[~removed]


def next_block_size(size: int, block: int, later_suppressed: int) -> int:
    """Ranks of the next step of the greedy pass: ``block`` when the last step (of ``size``
    ranks) suppressed fewer later boxes than it had ranks (sparse output: few large steps
    are cheapest), else twice ``size``, at most ``block`` (clustered output: the best boxes
    clear their clusters before the many boxes of the next ranks look for neighbours)."""
    if later_suppressed < size:
        return block
    return min(2 * size, block)


def _suppress_from_block(
    r0: int,
    r1: int,
    boxes: Tensor,
    lo: Tensor,
    hi: Tensor,
    areas: Tensor,
    targets: SortedAABBs,
    groups: Tensor | None,
    removed: Tensor,
    iou_threshold: float,
) -> int:
    """One step of the greedy pass over ranks ``r0 .. r1`` (rank-ordered ``boxes``, their
    AABBs ``lo`` / ``hi``, ``areas``, optional ``groups``): the block's greedy decisions and
    the later boxes its kept boxes suppress are written to ``removed`` (N,) bool, in place.
    Returns the number of (kept box, later box) suppressing pairs."""
    src = r0 + (~removed[r0:r1]).nonzero()[:, 0]
    if src.numel() == 0:
        return 0
    s_idx, dst = overlap_pairs(lo[src], hi[src], targets)
    src = src[s_idx]
    valid = (dst > src) & ~removed[dst]
    if groups is not None:
        valid &= groups[src] == groups[dst]
    src, dst = src[valid], dst[valid]
    # IoU <= U / (a1 + a2 - U) with U = min(area of the AABB intersection, a1, a2): skip
    # the pairs whose bound cannot exceed the threshold
    u = (torch.minimum(hi[src], hi[dst]) - torch.maximum(lo[src], lo[dst])).clamp_(min=0)
    u = torch.minimum(u.prod(dim=1), torch.minimum(areas[src], areas[dst]))
    maybe = u * (1 + 1e-5) > iou_threshold * (areas[src] + areas[dst] - u)
    src, dst = src[maybe], dst[maybe]
    if src.numel() == 0:
        return 0
    hit = _pair_overlaps(boxes[src], boxes[dst], 'iou') > iou_threshold
    src, dst = src[hit], dst[hit]
    intra = dst < r1
    if bool(intra.any()):
        block_removed = removed[r0:r1].cpu().numpy()
        greedy_from_edges(
            (src[intra] - r0).cpu().numpy(),
            (dst[intra] - r0).cpu().numpy(),
            r1 - r0,
            removed=block_removed,
        )
        removed[r0:r1] = torch.from_numpy(block_removed).to(removed.device)
    out = ~intra
    out &= ~removed[src]
    removed[dst[out]] = True
    return int(out.sum())


def greedy_from_edges(
    src: np.ndarray, dst: np.ndarray, num: int, removed: np.ndarray | None = None
) -> np.ndarray:
    """Resolve greedy suppression on a graph of rank-ordered edges.

    Args:
        src (ndarray): (E,) ranks of the suppressing (higher-scored) boxes.
        dst (ndarray): (E,) ranks of the boxes they suppress if kept; ``src < dst``.
        num (int): number of boxes (ranks are ``0 .. num-1``, 0 = best score).
        removed (ndarray, optional): (num,) bool, boxes already removed; updated in place.

    Returns:
        ndarray: sorted ranks of the kept boxes.
    """
    if removed is None:
        removed = np.zeros(num, dtype=bool)
    if src.size:
        order = np.argsort(src, kind='stable')
        src, dst = src[order], dst[order]
        sources, starts = np.unique(src, return_index=True)
        ends = np.append(starts[1:], src.size)
        # Sources are visited in rank order; when source i is reached every box ranked
        # before it has already been decided, so removed[i] is final.
        for i, s, e in zip(sources.tolist(), starts.tolist(), ends.tolist()):
            if not removed[i]:
                removed[dst[s:e]] = True
    return np.flatnonzero(~removed)


_NMS_OPS = {'nms': nms, 'nms_rotated': nms_rotated}
_NMS_BOX_DIMS = {'nms': 4, 'nms_rotated': 5}


def batched_nms(
    boxes: Tensor, scores: Tensor, idxs: Tensor, nms_cfg: dict | None, class_agnostic: bool = False
) -> tuple[Tensor, Tensor]:
    """NMS applied independently per class index, with mmcv's ``batched_nms`` semantics.

    Args:
        boxes (Tensor): (N, 4) horizontal boxes ``(x1, y1, x2, y2)`` or (N, 5) rotated boxes.
        scores (Tensor): (N,) scores.
        idxs (Tensor): (N,) class (cluster) index of each box; boxes with different indices
            never suppress each other unless ``class_agnostic``.
        nms_cfg (dict | None): None skips NMS and returns all boxes sorted by score.
            Otherwise ``type`` ('nms' -> torchvision, 'nms_rotated' -> :func:`nms_rotated`,
            or a callable with the same interface; default 'nms'), ``iou_threshold``, and
            optionally ``max_num`` (keep at most this many, > 0), ``split_thr`` (default
            10000: with at least this many boxes NMS runs class by class),
            ``class_agnostic`` (overrides the argument) and the extra keyword arguments
            of the chosen op.
        class_agnostic (bool): Ignore ``idxs``.

    Returns:
        tuple[Tensor, Tensor]: ``dets`` (K, D + 1) = kept boxes + score column, and
        ``keep`` (K,) indices into the input, in descending score order.

    Notes:
        The path is chosen by ``nms_cfg['type']`` only ('nms' needs (N, 4), 'nms_rotated'
        (N, 5) boxes). For 'nms' classes are separated with mmcv's coordinate-offset trick;
        a callable op (whose box format is unknown) runs class by class.
        For rotated boxes the class index is passed to :func:`nms_rotated` as ``labels``,
        which separates classes exactly (mmcv shifts the centres by a class offset, which
        rounds the centres in float32); the kept set is the same per-class greedy NMS.
        ``max_num`` is honoured for every op in both branches (mmcv forwards it to the op
        in the single-pass branch, where ``nms_rotated`` does not accept it).
    """
    if nms_cfg is None:
        scores_sorted, inds = scores.sort(descending=True)
        return torch.cat([boxes[inds], scores_sorted[:, None].to(boxes.dtype)], -1), inds
    n = boxes.size(0)
    if boxes.dim() != 2 or scores.shape != (n,) or idxs.shape != (n,):
        raise ValueError(
            f'boxes must be (N, D), scores and idxs (N,), but got '
            f'{tuple(boxes.shape)}, {tuple(scores.shape)} and {tuple(idxs.shape)}'
        )
    cfg = dict(nms_cfg)
    class_agnostic = cfg.pop('class_agnostic', class_agnostic)
    nms_type = cfg.pop('type', 'nms')
    split_thr = cfg.pop('split_thr', 10000)
    max_num = cfg.pop('max_num', -1)
    if 'iou_thr' in cfg:  # legacy name accepted by mmcv
        cfg['iou_threshold'] = cfg.pop('iou_thr')
    if callable(nms_type):
        nms_op = nms_type
    elif nms_type in _NMS_OPS:
        nms_op = _NMS_OPS[nms_type]
        box_dim = _NMS_BOX_DIMS[nms_type]
        if boxes.size(-1) != box_dim:
            raise ValueError(
                f"nms_cfg['type'] {nms_type!r} needs boxes of shape (N, {box_dim}), "
                f'but got {tuple(boxes.shape)}'
            )
    else:
        raise ValueError(
            f"nms_cfg['type'] must be one of {sorted(_NMS_OPS)} or a callable, but got {nms_type!r}"
        )
    if n == 0:
        return boxes.new_zeros(0, boxes.size(-1) + 1), idxs.new_zeros(0, dtype=torch.long)
    # the class separation follows the op, never the number of columns: 'nms_rotated' takes
    # the classes as labels, 'nms' (x1, y1, x2, y2) boxes are shifted by a class offset, and
    # an op of unknown box format runs class by class
    use_labels = nms_op is nms_rotated and not class_agnostic
    if callable(nms_type) and not class_agnostic:
        split_thr = 0

    if class_agnostic or use_labels or split_thr == 0:
        boxes_for_nms = boxes
    else:
        offsets = idxs.to(boxes) * (boxes.max() + 1)
        boxes_for_nms = boxes + offsets[:, None]

    def run(sel_boxes, sel_scores, sel_idxs):
        if use_labels:
            return nms_op(sel_boxes, sel_scores, labels=sel_idxs, **cfg)
        return nms_op(sel_boxes, sel_scores, **cfg)

    if n < split_thr:
        dets, keep = run(boxes_for_nms, scores, idxs)
        kept_scores = dets[:, -1]
    else:
        total_mask = scores.new_zeros(scores.size(), dtype=torch.bool)
        scores_after = scores.new_zeros(scores.size())
        for cls in torch.unique(idxs):
            mask = (idxs == cls).nonzero()[:, 0]
            dets, keep = run(boxes_for_nms[mask], scores[mask], idxs[mask])
            total_mask[mask[keep]] = True
            scores_after[mask[keep]] = dets[:, -1].to(scores_after.dtype)
        keep = total_mask.nonzero()[:, 0]
        kept_scores, order = scores_after[keep].sort(descending=True)
        keep = keep[order]
    if max_num > 0:
        keep, kept_scores = keep[:max_num], kept_scores[:max_num]
    return torch.cat([boxes[keep], kept_scores[:, None].to(boxes.dtype)], -1), keep
