"""Exact IoU of rotated rectangles in pure PyTorch (differentiable, any device).

Method
------
For a pair (A, B) the intersection area is computed in B's local frame, where B is the
axis-aligned box ``[-w_B/2, w_B/2] x [-h_B/2, h_B/2]`` and A is expressed relative to B's
centre (so huge absolute coordinates cost no precision). Let ``P_B`` be the Euclidean
projection onto B, which for an axis-aligned box is a coordinate-wise clamp. For the closed,
simple boundary path ``dA`` of A,

    area(A ∩ B) = |signed shoelace area of P_B(dA)|.

Proof sketch: P_B is homotopic to the identity on R² minus any point z in B's interior (the
segment from x to P_B(x) never enters B's interior), so the winding number of P_B(dA) about
such z equals that of dA (1 inside A, 0 outside); the projected path lies in B, so its
winding number about points outside B is 0. Integrating the winding number gives the area.
P_B of an edge of A is piecewise linear, with breakpoints where the edge crosses the lines
``x = ±w_B/2`` and ``y = ±h_B/2``: each of A's four edges becomes at most five pieces, so the
projected path is a fixed-size 20-vertex polyline. This is Sutherland–Hodgman clipping of A
by B's four half-planes written as one projection, in a padded fixed-size form: no sorting
of vertices, no data-dependent shapes, just elementwise ops.

Robustness: every vertex is a clamped point of A's boundary, so the path is always closed;
a breakpoint computed imprecisely for an edge that is nearly parallel to a clipping line
moves a vertex along a piece that lies within rounding distance of that line, so the area
error stays at rounding level (touching, collinear-edge, nested and identical boxes included).

Speed and memory: pairs whose axis-aligned bounding boxes do not meet are never evaluated;
the work is cut into chunks (rows of the candidate mask, then bounded batches of pairs), so
an ``N x M`` matrix needs O(N*M) output memory plus bounded working memory.
"""

import torch
from torch import Tensor

from .rbox_geometry import (
    aabb_overlap,
    check_rboxes,
    compute_dtype,
    limited_cpu_threads,
    rbox_aabbs,
)

# pairs evaluated at once by the intersection kernel (about 1 KB of temporaries per pair)
_KERNEL_CHUNK = 1 << 15
# elements of the (rows x M) candidate mask built at once
_MASK_CHUNK = 1 << 22
# boxes with an area below this give IoU 0 (the same rule as mmcv's kernel)
_MIN_AREA = 1e-14


def rotated_box_intersection(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Exact intersection area of paired rotated boxes (no pruning, no chunking).

    Args:
        boxes1 (Tensor): (K, 5) rotated boxes ``(cx, cy, w, h, t)``, clockwise radians.
        boxes2 (Tensor): (K, 5) rotated boxes, paired row by row with ``boxes1``.

    Returns:
        Tensor: (K,) intersection areas, differentiable w.r.t. both inputs. Widths and
        heights are expected to be non-negative.
    """
    dtype = boxes1.dtype
    tiny = torch.finfo(dtype).eps ** 2
    # B's frame: rotate A's centre offset by -t_B; A's orientation relative to B.
    cb, sb = torch.cos(boxes2[:, 4]), torch.sin(boxes2[:, 4])
    dx = boxes1[:, 0] - boxes2[:, 0]
    dy = boxes1[:, 1] - boxes2[:, 1]
    ox = cb * dx + sb * dy
    oy = cb * dy - sb * dx
    rel = boxes1[:, 4] - boxes2[:, 4]
    c, s = torch.cos(rel), torch.sin(rel)
    hw1, hh1 = boxes1[:, 2] * 0.5, boxes1[:, 3] * 0.5
    hw2, hh2 = (boxes2[:, 2] * 0.5)[:, None, None], (boxes2[:, 3] * 0.5)[:, None, None]
    # half side vectors of A: v1 along its width, v2 along its height
    v1x, v1y = hw1 * c, hw1 * s
    v2x, v2y = -hh1 * s, hh1 * c
    # corners c+v1+v2, c+v1-v2, c-v1-v2, c-v1+v2 and the edges leaving them: (K, 4)
    px = torch.stack([ox + v1x + v2x, ox + v1x - v2x, ox - v1x - v2x, ox - v1x + v2x], 1)
    py = torch.stack([oy + v1y + v2y, oy + v1y - v2y, oy - v1y - v2y, oy - v1y + v2y], 1)
    ex = torch.stack([-2 * v2x, -2 * v1x, 2 * v2x, 2 * v1x], 1)
    ey = torch.stack([-2 * v2y, -2 * v1y, 2 * v2y, 2 * v1y], 1)
    lo_x, hi_x = _slab_params(px, ex, hw2[:, :, 0], tiny)
    lo_y, hi_y = _slab_params(py, ey, hh2[:, :, 0], tiny)
    # merge two sorted pairs into the four sorted breakpoints of each edge
    mid_a = torch.maximum(lo_x, lo_y)
    mid_b = torch.minimum(hi_x, hi_y)
    params = torch.stack(
        [
            torch.zeros_like(lo_x),
            torch.minimum(lo_x, lo_y),
            torch.minimum(mid_a, mid_b),
            torch.maximum(mid_a, mid_b),
            torch.maximum(hi_x, hi_y),
        ],
        dim=2,
    )  # (K, 4, 5)
    xs = px[:, :, None] + params * ex[:, :, None]
    ys = py[:, :, None] + params * ey[:, :, None]
    xs = torch.minimum(torch.maximum(xs, -hw2), hw2).flatten(1)  # (K, 20)
    ys = torch.minimum(torch.maximum(ys, -hh2), hh2).flatten(1)
    xn, yn = torch.roll(xs, -1, dims=1), torch.roll(ys, -1, dims=1)
    # the corner order above runs clockwise on screen: the shoelace sum is -2 * area
    area = (xn * ys - xs * yn).sum(dim=1) * 0.5
    return area.clamp(min=0)


def _slab_params(p: Tensor, e: Tensor, half: Tensor, tiny: float) -> tuple[Tensor, Tensor]:
    """Edge parameters (clamped to [0, 1]) where ``p + t e`` enters / leaves ``[-half, half]``.

    Edges (almost) parallel to the slab get ``(0, 0)``: no breakpoint is needed there, and
    any parameter in [0, 1] would be harmless. Division is guarded so that neither the
    forward nor the backward pass can produce inf or NaN.
    """
    ok = e.abs() > tiny
    inv = 1.0 / torch.where(ok, e, torch.ones_like(e))
    t1 = (-half - p) * inv
    t2 = (half - p) * inv
    zero = torch.zeros_like(t1)
    lo = torch.where(ok, torch.minimum(t1, t2).clamp(0, 1), zero)
    hi = torch.where(ok, torch.maximum(t1, t2).clamp(0, 1), zero)
    return lo, hi


def _pair_overlaps(boxes1: Tensor, boxes2: Tensor, mode: str) -> Tensor:
    """IoU / IoF of paired boxes, evaluated in bounded chunks. (K, 5), (K, 5) -> (K,)."""
    area1 = boxes1[:, 2] * boxes1[:, 3]
    area2 = boxes2[:, 2] * boxes2[:, 3]
    valid = (area1 >= _MIN_AREA) & (area2 >= _MIN_AREA)
    # replace degenerate boxes by a unit box so that their (discarded) gradients stay finite
    unit = boxes1.new_tensor([0.0, 0.0, 1.0, 1.0, 0.0])
    b1 = torch.where(valid[:, None], boxes1, unit)
    b2 = torch.where(valid[:, None], boxes2, unit)
    parts = [
        rotated_box_intersection(b1[i : i + _KERNEL_CHUNK], b2[i : i + _KERNEL_CHUNK])
        for i in range(0, b1.size(0), _KERNEL_CHUNK)
    ]
    inter = torch.cat(parts) if len(parts) != 1 else parts[0]
    a1 = torch.where(valid, area1, torch.ones_like(area1))
    a2 = torch.where(valid, area2, torch.ones_like(area2))
    inter = torch.minimum(inter, torch.minimum(a1, a2))
    base = a1 + a2 - inter if mode == 'iou' else a1
    return torch.where(valid, inter / base, torch.zeros_like(inter))


def box_iou_rotated(
    bboxes1: Tensor,
    bboxes2: Tensor,
    mode: str = 'iou',
    aligned: bool = False,
    clockwise: bool = True,
) -> Tensor:
    """IoU (or IoF) of rotated boxes, exact, differentiable; mmcv's signature and semantics.

    Args:
        bboxes1 (Tensor): (N, 5) boxes ``(cx, cy, w, h, t)``, ``t`` in radians.
        bboxes2 (Tensor): (M, 5) boxes in the same format.
        mode (str): ``'iou'`` (intersection over union) or ``'iof'`` (intersection over
            the area of the box from ``bboxes1``).
        aligned (bool): If True, N must equal M and the result is (N,) for row pairs.
        clockwise (bool): Whether the angle is clockwise in image coordinates (mmcv's
            default). With False the angles are negated first.

    Returns:
        Tensor: (N, M), or (N,) when ``aligned``, in the promoted input dtype. Pairs where
        either box has an area below 1e-14 give 0 (never NaN); disjoint or touching boxes
        give 0. Gradients flow to both inputs. On the CPU the forward pass uses at most
        :func:`ai4rs.ops.set_cpu_threads` threads (torch's setting by default).
    """
    if mode not in ('iou', 'iof'):
        raise ValueError(f"mode must be 'iou' or 'iof', but got {mode!r}")
    bboxes1 = check_rboxes(bboxes1, 'bboxes1')
    bboxes2 = check_rboxes(bboxes2, 'bboxes2')
    if bboxes1.device != bboxes2.device:
        raise ValueError(
            f'bboxes1 and bboxes2 must be on the same device, but got '
            f'{bboxes1.device} and {bboxes2.device}'
        )
    out_dtype = torch.promote_types(bboxes1.dtype, bboxes2.dtype)
    if not out_dtype.is_floating_point:
        out_dtype = torch.float32
    dtype = compute_dtype(bboxes1, bboxes2)
    b1, b2 = bboxes1.to(dtype), bboxes2.to(dtype)
    if not clockwise:
        flip = b1.new_tensor([1.0, 1.0, 1.0, 1.0, -1.0])
        b1, b2 = b1 * flip, b2 * flip
    n, m = b1.size(0), b2.size(0)
    if aligned and n != m:
        raise ValueError(f'aligned=True needs as many bboxes1 as bboxes2, but got {n} and {m}')
    with limited_cpu_threads(b1.device):
        out = _aligned(b1, b2, mode) if aligned else _all_pairs(b1, b2, mode)
    return out.to(out_dtype)


def _aligned(b1: Tensor, b2: Tensor, mode: str) -> Tensor:
    out = b1.new_zeros(b1.size(0))
    if b1.size(0) == 0:
        return out
    lo1, hi1 = rbox_aabbs(b1.detach())
    lo2, hi2 = rbox_aabbs(b2.detach())
    idx = aabb_overlap(lo1, hi1, lo2, hi2).nonzero()[:, 0]
    if idx.numel() == b1.size(0):
        return _pair_overlaps(b1, b2, mode)
    if idx.numel():
        out = out.index_put((idx,), _pair_overlaps(b1[idx], b2[idx], mode))
    return out


def _all_pairs(b1: Tensor, b2: Tensor, mode: str) -> Tensor:
    n, m = b1.size(0), b2.size(0)
    out = b1.new_zeros(n * m)
    if n == 0 or m == 0:
        return out.view(n, m)
    lo1, hi1 = rbox_aabbs(b1.detach())
    lo2, hi2 = rbox_aabbs(b2.detach())
    lo2, hi2 = lo2[None], hi2[None]
    rows_per_chunk = max(1, _MASK_CHUNK // m)
    for r0 in range(0, n, rows_per_chunk):
        r1 = min(n, r0 + rows_per_chunk)
        mask = aabb_overlap(lo1[r0:r1, None], hi1[r0:r1, None], lo2, hi2)
        ii, jj = mask.nonzero(as_tuple=True)
        del mask
        if ii.numel() == 0:
            continue
        ii = ii + r0
        for k in range(0, ii.numel(), _KERNEL_CHUNK):
            i, j = ii[k : k + _KERNEL_CHUNK], jj[k : k + _KERNEL_CHUNK]
            out.index_put_((i * m + j,), _pair_overlaps(b1[i], b2[j], mode))
    return out.view(n, m)
