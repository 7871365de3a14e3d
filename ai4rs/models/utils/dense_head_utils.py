"""Ground-truth batching and score filtering shared by YOLO-style dense heads."""

from collections.abc import Sequence

import torch
from torch import Tensor

from ai4rs.structures.bbox import get_box_tensor


def gt_instances_preprocess(batch_gt_instances: Tensor | Sequence, batch_size: int) -> Tensor:
    """Ground truth of a batch as one zero-padded tensor (mmyolo's function of this name).

    Args:
        batch_gt_instances (Tensor | Sequence[InstanceData]): either the YOLO collate's
            (N, 2 + box_dim) rows ``[img_idx, label, box...]`` of the whole batch, or one
            ``InstanceData`` per image with ``bboxes`` (a box object or (n, box_dim) tensor)
            and ``labels`` (n,).
        batch_size (int): number of images B.

    Returns:
        Tensor: (B, G, 1 + box_dim) rows ``[label, box...]``; G is the largest number of
        ground truths of an image, images with fewer are padded with zero rows (a zero box
        is what marks padding downstream). Order within an image is kept.
    """
    if isinstance(batch_gt_instances, Tensor):
        return _pad_batched_rows(batch_gt_instances, batch_size)
    if len(batch_gt_instances) != batch_size:
        raise ValueError(
            f'gt_instances_preprocess: {len(batch_gt_instances)} gt_instances for '
            f'a batch of {batch_size} images'
        )
    rows = []
    for img_idx, gt_instances in enumerate(batch_gt_instances):
        bboxes = get_box_tensor(gt_instances.bboxes)
        labels = gt_instances.labels
        if bboxes.dim() != 2 or labels.shape != (bboxes.size(0),):
            raise ValueError(
                f'gt_instances_preprocess: image {img_idx} has bboxes of shape '
                f'{tuple(bboxes.shape)} and labels of shape {tuple(labels.shape)}'
            )
        rows.append(torch.cat([labels[:, None].to(bboxes.dtype), bboxes], dim=-1))
    max_len = max((len(r) for r in rows), default=0)
    box_dim = rows[0].size(-1) - 1 if rows else 4
    out = (
        rows[0].new_zeros((batch_size, max_len, box_dim + 1))
        if rows
        else torch.zeros((batch_size, 0, box_dim + 1))
    )
    for img_idx, r in enumerate(rows):
        out[img_idx, : len(r)] = r
    _check_finite(out, 'gt_instances_preprocess')
    return out


def _pad_batched_rows(rows: Tensor, batch_size: int) -> Tensor:
    """(N, 2 + box_dim) ``[img_idx, label, box...]`` -> (B, G, 1 + box_dim), vectorised."""
    if rows.dim() != 2 or rows.size(-1) < 3:
        raise ValueError(
            f'gt_instances_preprocess: batched ground truth must be (N, 2 + '
            f'box_dim) rows [img_idx, label, box...], got {tuple(rows.shape)}'
        )
    box_dim = rows.size(-1) - 2
    if rows.size(0) == 0:
        return rows.new_zeros((batch_size, 0, box_dim + 1))
    img_idx = rows[:, 0].long()
    if bool((img_idx < 0).any()) or bool((img_idx >= batch_size).any()):
        raise ValueError(
            f'gt_instances_preprocess: image indices must be in [0, {batch_size}), '
            f'got {sorted(set(img_idx.tolist()))}'
        )
    counts = torch.bincount(img_idx, minlength=batch_size)
    order = torch.argsort(img_idx, stable=True)
    sorted_idx = img_idx[order]
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(rows.size(0), device=rows.device) - starts[sorted_idx]
    out = rows.new_zeros((batch_size, int(counts.max()), box_dim + 1))
    out[sorted_idx, rank] = rows[order, 1:]
    _check_finite(out, 'gt_instances_preprocess')
    return out


def _check_finite(values: Tensor, owner: str) -> None:
    if not bool(torch.isfinite(values).all()):
        bad = (~torch.isfinite(values)).any(-1).nonzero()[:, :2].tolist()
        raise ValueError(f'{owner}: non-finite ground truth at (image, index) {bad[:10]}')


def filter_scores_and_topk(
    scores: Tensor, score_thr: float, topk: int, results: dict | None = None
) -> tuple[Tensor, Tensor, Tensor, dict | None]:
    """Keep scores above a threshold, then the ``topk`` largest (mmdet's function).

    Args:
        scores (Tensor): (P, C) scores.
        score_thr (float): a score is kept when it is > ``score_thr``.
        topk (int): at most this many (prior, class) pairs are kept.
        results (dict, optional): tensors with P rows, indexed by the kept priors.

    Returns:
        tuple: ``scores`` (K,) in descending order, ``labels`` (K,) class indices,
        ``keep_idxs`` (K,) prior indices, and ``results`` indexed by ``keep_idxs`` (or None).
    """
    valid_mask = scores > score_thr
    kept_scores, topk_idxs = _sorted_topk(scores[valid_mask], torch.nonzero(valid_mask), topk)
    keep_idxs, labels = topk_idxs.unbind(dim=1)
    filtered = None
    if results is not None:
        filtered = {k: v[keep_idxs] for k, v in results.items()}
    return kept_scores, labels, keep_idxs, filtered


def _sorted_topk(kept_scores: Tensor, valid_idxs: Tensor, topk: int) -> tuple[Tensor, Tensor]:
    """The ``topk`` largest of one image's kept scores (M,) and their index rows (M, D),
    best first (``torch.sort``'s order: the order of equal scores is that of mmdet's
    function, and the same for the same scores wherever they come from)."""
    num_topk = min(topk, valid_idxs.size(0))
    kept_scores, idxs = kept_scores.sort(descending=True)
    return kept_scores[:num_topk], valid_idxs[idxs[:num_topk]]


def batched_filter_scores_and_topk(
    scores: Tensor, score_thr: float, topk: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:func:`filter_scores_and_topk` of every image of a batch: one threshold pass over the
    whole batch, then each image's kept scores sorted on their own (the same sort of the
    same scores as :func:`filter_scores_and_topk`, so the same order, equal scores included).

    Args:
        scores (Tensor): (B, P, C) scores.
        score_thr (float): a score is kept when it is > ``score_thr``.
        topk (int): at most this many (prior, class) pairs are kept per image.

    Returns:
        tuple: ``scores`` (M,), ``labels`` (M,) class indices, ``keep_idxs`` (M,) prior
        indices and ``img_idxs`` (M,) image indices: image 0's pairs first, then image 1's...,
        each image's exactly those :func:`filter_scores_and_topk` gives for it, in its order.
    """
    if scores.dim() != 3:
        raise ValueError(f'scores must be (B, P, C), but got {tuple(scores.shape)}')
    valid_mask = scores > score_thr
    kept_scores = scores[valid_mask]
    valid_idxs = torch.nonzero(valid_mask)  # (M, 3) image, prior, class; row-major
    counts = torch.bincount(valid_idxs[:, 0], minlength=scores.size(0)).tolist()
    parts = [
        _sorted_topk(s, idx, topk)
        for s, idx in zip(kept_scores.split(counts), valid_idxs.split(counts), strict=True)
    ]
    kept_scores = torch.cat([s for s, _ in parts])
    img_idxs, keep_idxs, labels = torch.cat([idx for _, idx in parts]).unbind(dim=1)
    return kept_scores, labels, keep_idxs, img_idxs
