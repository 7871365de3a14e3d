"""Small shared geometry helpers for rotated boxes (pure PyTorch).

Box format everywhere: ``(cx, cy, w, h, t)`` with ``t`` in radians, clockwise in image
coordinates (x right, y down), the convention of mmcv / mmrotate.
"""

import torch
from torch import Tensor


def check_rboxes(boxes: Tensor, name: str) -> Tensor:
    """Check that ``boxes`` is a ``(N, 5)`` tensor (or empty) and return it as ``(N, 5)``.

    Raises:
        TypeError / ValueError naming ``name`` when the input is not valid.
    """
    if not isinstance(boxes, Tensor):
        raise TypeError(f'{name} must be a torch.Tensor, but got {type(boxes)}')
    if boxes.numel() == 0:
        return boxes.reshape(0, 5)
    if boxes.dim() != 2 or boxes.size(-1) != 5:
        raise ValueError(
            f'{name} must have shape (N, 5) as (cx, cy, w, h, t), '
            f'but got shape {tuple(boxes.shape)}'
        )
    return boxes


def compute_dtype(*tensors: Tensor) -> torch.dtype:
    """The floating dtype used for geometry: the promoted input dtype, at least float32."""
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    if dtype not in (torch.float32, torch.float64):
        dtype = torch.float32
    return dtype


def rbox_aabb_half_extents(boxes: Tensor) -> Tensor:
    """Half-extents of the axis-aligned bounding box of rotated boxes.

    Args:
        boxes (Tensor): (..., 5) rotated boxes.

    Returns:
        Tensor: (..., 2) as ``(|w/2 cos t| + |h/2 sin t|, |w/2 sin t| + |h/2 cos t|)``.
    """
    cos, sin = torch.cos(boxes[..., 4]), torch.sin(boxes[..., 4])
    hw, hh = boxes[..., 2] * 0.5, boxes[..., 3] * 0.5
    ex = (hw * cos).abs() + (hh * sin).abs()
    ey = (hw * sin).abs() + (hh * cos).abs()
    return torch.stack([ex, ey], dim=-1)


def rbox_aabbs(boxes: Tensor, slack: float = 1e-5) -> tuple[Tensor, Tensor]:
    """Axis-aligned bounding boxes ``(lo, hi)``, each (N, 2), of rotated boxes, grown by a
    tiny relative ``slack`` so that rounding never separates boxes whose exact
    intersection is positive."""
    ext = rbox_aabb_half_extents(boxes) * (1 + slack) + 1e-12
    return boxes[:, :2] - ext, boxes[:, :2] + ext


def aabb_overlap(lo1: Tensor, hi1: Tensor, lo2: Tensor, hi2: Tensor) -> Tensor:
    """Whether axis-aligned boxes overlap or touch; (..., 2) inputs broadcast to (...) bool.

    Written with comparisons only, so broadcasting (R, 1, 2) against (1, M, 2) creates no
    float temporaries of size R x M.
    """
    out = lo1[..., 0] <= hi2[..., 0]
    out &= lo2[..., 0] <= hi1[..., 0]
    out &= lo1[..., 1] <= hi2[..., 1]
    out &= lo2[..., 1] <= hi1[..., 1]
    return out


class SortedAABBs:
    """Axis-aligned boxes sorted by their minimum x, for repeated overlap queries.

    Args:
        lo (Tensor): (N, 2) minimum corners (x, y).
        hi (Tensor): (N, 2) maximum corners.
    """

    def __init__(self, lo: Tensor, hi: Tensor) -> None:
        span = (hi - lo).abs().amax() if lo.numel() else lo.new_zeros(())
        # a small slack so that rounding never drops a touching / barely overlapping pair
        self.slack = float(span) * 1e-6 + 1e-12
        self.x_lo, self.perm = torch.sort(lo[:, 0].contiguous())
        self.x_hi = hi[self.perm, 0] + self.slack
        self.y_lo = lo[self.perm, 1].contiguous()
        self.y_hi = hi[self.perm, 1] + self.slack


def _expand_runs(starts: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
    """For runs ``[starts[k], starts[k] + counts[k])`` return (run id, position) per element."""
    total = int(counts.sum())
    run = torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts)
    first = torch.cumsum(counts, 0) - counts
    pos = torch.arange(total, device=counts.device) - first[run] + starts[run]
    return run, pos


def overlap_pairs(lo: Tensor, hi: Tensor, targets: SortedAABBs) -> tuple[Tensor, Tensor]:
    """All pairs (source, target) whose axis-aligned boxes overlap or touch.

    Exact two-pass sweep along x, without any bound on box sizes: pass A pairs each source
    with the targets whose ``x_lo`` lies in ``[x_lo_s, x_hi_s]``; pass B pairs each target
    with the sources whose ``x_lo`` lies in ``(x_lo_t, x_hi_t]``. Together they give every
    x-overlapping pair exactly once, found with ``searchsorted``; y is then checked.
    Work is O((S + N) log + #x-overlapping pairs).

    Args:
        lo (Tensor): (S, 2) minimum corners of the sources.
        hi (Tensor): (S, 2) maximum corners of the sources.
        targets (SortedAABBs): the N targets.

    Returns:
        tuple[Tensor, Tensor]: source indices (into ``lo``) and target indices (into the
        targets' original order), as long tensors.
    """
    t = targets
    s_lo_x, s_perm = torch.sort(lo[:, 0].contiguous())
    s_hi_x = hi[s_perm, 0] + t.slack
    s_lo_y = lo[s_perm, 1]
    s_hi_y = hi[s_perm, 1] + t.slack
    # pass A: targets starting inside the source's x-interval
    a0 = torch.searchsorted(t.x_lo, s_lo_x)
    a1 = torch.searchsorted(t.x_lo, s_hi_x, right=True)
    src_a, tgt_a = _expand_runs(a0, (a1 - a0).clamp_(min=0))
    # pass B: sources starting strictly inside the target's x-interval
    b0 = torch.searchsorted(s_lo_x, t.x_lo, right=True)
    b1 = torch.searchsorted(s_lo_x, t.x_hi, right=True)
    tgt_b, src_b = _expand_runs(b0, (b1 - b0).clamp_(min=0))
    src = torch.cat([src_a, src_b])
    tgt = torch.cat([tgt_a, tgt_b])
    keep = (t.y_lo[tgt] <= s_hi_y[src]) & (s_lo_y[src] <= t.y_hi[tgt])
    return s_perm[src[keep]], t.perm[tgt[keep]]
