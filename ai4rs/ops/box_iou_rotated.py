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
the work is cut into chunks (row blocks of the candidate mask, then bounded batches of pairs),
so an ``N x M`` matrix needs O(N*M) output memory plus bounded working memory per thread. The
kernel keeps boxes as rows ``(5, K)`` and x / y as a leading dimension, so each step is one
elementwise op over all pairs. On the CPU the row blocks are independent tasks run by
single-threaded workers (:mod:`ai4rs.ops.cpu_tasks`): no OpenMP barrier per step, which kept
two threads from being slower than one on busy cores. A pair's value depends only on the pair
(the cut depends only on the sizes, and the kernel sums each pair's terms on their own), so the
result is bitwise the same for any thread count.
"""

import torch
from torch import Tensor

from .cpu_tasks import limited_cpu_threads, run_tasks
from .rbox_geometry import aabb_overlap, check_rboxes, compute_dtype, rbox_aabbs

# pairs evaluated at once by the intersection kernel (about 1 KB of temporaries per pair)
_KERNEL_CHUNK = 1 << 13
# elements of the (rows x M) candidate mask of one task of an all-pairs matrix
_MASK_CHUNK = 1 << 17
# boxes with an area below this give IoU 0 (the same rule as mmcv's kernel)
_MIN_AREA = 1e-14

_CONSTANTS: dict[tuple[torch.dtype, torch.device], tuple[Tensor, ...]] = {}


def _constants(dtype: torch.dtype, device: torch.device) -> tuple[Tensor, ...]:
    """Made once per dtype and device (no host-to-device copy per call): the kernel's sign
    tables, each (4, 1) (A's corners are ``o + a_k v1 + b_k v2``; the edge leaving corner k is
    ``s_k`` times (v2, v1, v2, v1)[k]), and the (5, 1) unit box that stands in for degenerate
    boxes."""
    key = (dtype, device)
    if key not in _CONSTANTS:
        # made outside inference mode even when first needed inside it: an inference tensor
        # in this cache would break every later autograd use (training after inference)
        with torch.inference_mode(False):
            _CONSTANTS[key] = _make_constants(dtype, device)
    return _CONSTANTS[key]


def _make_constants(dtype: torch.dtype, device: torch.device) -> tuple[Tensor, ...]:
    signs = torch.tensor(
        [[1.0, 1.0, -1.0, -1.0], [1.0, -1.0, -1.0, 1.0], [-2.0, -2.0, 2.0, 2.0]],
        dtype=dtype,
        device=device,
    )
    unit = torch.tensor([[0.0], [0.0], [1.0], [1.0], [0.0]], dtype=dtype, device=device)
    return (*signs[:, :, None].unbind(0), unit)


def rotated_box_intersection(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Exact intersection area of paired rotated boxes (no pruning, no chunking).

    Args:
        boxes1 (Tensor): (K, 5) rotated boxes ``(cx, cy, w, h, t)``, clockwise radians.
        boxes2 (Tensor): (K, 5) rotated boxes, paired row by row with ``boxes1``.

    Returns:
        Tensor: (K,) intersection areas, differentiable w.r.t. both inputs. Widths and
        heights are expected to be non-negative.
    """
    return _intersection(boxes1.t().contiguous(), boxes2.t().contiguous())


def _intersection(b1: Tensor, b2: Tensor) -> Tensor:
    """The kernel on boxes stored as rows: (5, K), (5, K) -> (K,) intersection areas.

    Every step is one elementwise op over all pairs, with x and y stacked as a leading
    dimension of 2, so the pairs (the last, contiguous dimension) vectorise.
    """
    k = b1.size(1)
    tiny = torch.finfo(b1.dtype).eps ** 2
    corner_a, corner_b, edge_sign, _ = _constants(b1.dtype, b1.device)
    # B's frame: rotate A's centre offset by -t_B; A's orientation relative to B
    cb, sb = torch.cos(b2[4]), torch.sin(b2[4])
    dx, dy = b1[0] - b2[0], b1[1] - b2[1]
    rel = b1[4] - b2[4]
    c, s = torch.cos(rel), torch.sin(rel)
    hw1, hh1 = b1[2] * 0.5, b1[3] * 0.5
    # (2, K): centre offset o and half side vectors v1 (along A's width), v2 (along its height)
    o = torch.stack([cb * dx + sb * dy, cb * dy - sb * dx])
    v1 = torch.stack([hw1 * c, hw1 * s])
    v2 = torch.stack([-hh1 * s, hh1 * c])
    half = (b2[2:4] * 0.5)[:, None]  # (2, 1, K): B's half width and half height
    # (2, 4, K): corners o + v1 + v2, o + v1 - v2, o - v1 - v2, o - v1 + v2 and the edges
    # leaving them: -2 v2, -2 v1, 2 v2, 2 v1
    p = torch.addcmul(torch.addcmul(o[:, None], corner_a, v1[:, None]), corner_b, v2[:, None])
    e = torch.stack([v2, v1, v2, v1], 1) * edge_sign
    # edge parameters in [0, 1] where p + t e enters / leaves the slab [-half, half];
    # edges (almost) parallel to the slab get (0, 0): no breakpoint is needed there
    ok = e.abs() > tiny
    inv = ok.to(e.dtype) / torch.where(ok, e, torch.ones_like(e))
    t1 = (-half - p) * inv
    t2 = (half - p) * inv
    lo = torch.minimum(t1, t2).clamp_(0, 1)
    hi = torch.maximum(t1, t2).clamp_(0, 1)
    # merge the x pair and the y pair into the sorted breakpoints of each edge: (4, 5, K)
    mid_a = torch.maximum(lo[0], lo[1])
    mid_b = torch.minimum(hi[0], hi[1])
    params = torch.stack(
        [
            torch.zeros_like(mid_a),
            torch.minimum(lo[0], lo[1]),
            torch.minimum(mid_a, mid_b),
            torch.maximum(mid_a, mid_b),
            torch.maximum(hi[0], hi[1]),
        ],
        dim=1,
    )
    # the 20-vertex path clamped to B: (2, 20, K)
    xy = torch.addcmul(p[:, :, None], params, e[:, :, None])
    xy = torch.clamp(xy, min=-half[:, None], max=half[:, None]).reshape(2, 20, k)
    nxt = torch.roll(xy, -1, dims=1)
    # the corner order above runs clockwise on screen: this sum is +2 * area; summed along
    # contiguous rows so that a pair's value never depends on the other pairs in the call
    terms = nxt[0] * xy[1] - xy[0] * nxt[1]
    area = terms.t().contiguous().sum(1) * 0.5
    return area.clamp(min=0)


def _records_grad(*tensors: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _pair_overlaps(boxes1: Tensor, boxes2: Tensor, mode: str) -> Tensor:
    """IoU / IoF of paired boxes, evaluated in bounded chunks. (K, 5), (K, 5) -> (K,)."""
    return _chunked_pair_overlaps(boxes1.t().contiguous(), boxes2.t().contiguous(), mode)


def _chunked_pair_overlaps(b1: Tensor, b2: Tensor, mode: str, parallel: bool = False) -> Tensor:
    """:func:`_pair_overlaps_t` in chunks of ``_KERNEL_CHUNK`` pairs, as tasks when
    ``parallel`` (and no autograd history is recorded). (5, K), (5, K) -> (K,)."""
    k = b1.size(1)
    if k <= _KERNEL_CHUNK:
        return _pair_overlaps_t(b1, b2, mode)
    starts = range(0, k, _KERNEL_CHUNK)
    out = b1.new_empty(k)

    def task(t: int) -> None:
        i = starts[t]
        j = i + _KERNEL_CHUNK
        out[i:j] = _pair_overlaps_t(b1[:, i:j], b2[:, i:j], mode)

    parallel = parallel and not _records_grad(b1, b2)
    run_tasks(task, len(starts), b1.device, parallel=parallel)
    return out


def _pair_overlaps_t(b1: Tensor, b2: Tensor, mode: str) -> Tensor:
    """IoU / IoF of paired boxes stored as rows: (5, K), (5, K) -> (K,)."""
    area1 = b1[2] * b1[3]
    area2 = b2[2] * b2[3]
    valid = (area1 >= _MIN_AREA) & (area2 >= _MIN_AREA)
    # replace degenerate boxes by a unit box so that their (discarded) gradients stay finite
    # (always: a data-dependent branch would synchronise with a GPU)
    unit = _constants(b1.dtype, b1.device)[3]
    b1 = torch.where(valid, b1, unit)
    b2 = torch.where(valid, b2, unit)
    area1 = torch.where(valid, area1, torch.ones_like(area1))
    area2 = torch.where(valid, area2, torch.ones_like(area2))
    inter = _intersection(b1, b2)
    inter = torch.minimum(inter, torch.minimum(area1, area2))
    base = area1 + area2 - inter if mode == 'iou' else area1
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
        :func:`ai4rs.ops.set_cpu_threads` threads (torch's setting by default), as tasks on
        single-threaded workers when no autograd history is recorded.
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
    b1t, b2t = b1.t(), b2.t()
    if idx.numel() == b1.size(0):
        return _chunked_pair_overlaps(b1t.contiguous(), b2t.contiguous(), mode, parallel=True)
    if idx.numel():
        vals = _chunked_pair_overlaps(b1t[:, idx], b2t[:, idx], mode, parallel=True)
        out = out.index_put((idx,), vals)
    return out


def _all_pairs(b1: Tensor, b2: Tensor, mode: str) -> Tensor:
    """(N, 5), (M, 5) -> (N, M), in tasks of row blocks of about ``_MASK_CHUNK`` candidate
    pairs; the cut depends only on N and M."""
    n, m = b1.size(0), b2.size(0)
    if n == 0 or m == 0:
        return b1.new_zeros(n, m)
    lo1, hi1 = rbox_aabbs(b1.detach())
    lo2, hi2 = rbox_aabbs(b2.detach())
    lo2, hi2 = lo2[None], hi2[None]
    b1t, b2t = b1.t().contiguous(), b2.t().contiguous()
    rows = max(1, _MASK_CHUNK // m)
    starts = range(0, n, rows)
    # with autograd history the same tasks run in order, writing into a zeroed matrix;
    # otherwise each task zeroes its own rows
    records_grad = _records_grad(b1, b2)
    out = b1.new_zeros(n, m) if records_grad else b1.new_empty(n, m)

    def task(t: int) -> None:
        r0 = starts[t]
        block = out[r0 : r0 + rows]
        if not records_grad:
            block.zero_()
        mask = aabb_overlap(lo1[r0 : r0 + rows, None], hi1[r0 : r0 + rows, None], lo2, hi2)
        ii, jj = mask.nonzero(as_tuple=True)
        if ii.numel():
            block.index_put_((ii, jj), _chunked_pair_overlaps(b1t[:, ii + r0], b2t[:, jj], mode))

    run_tasks(task, len(starts), b1.device, parallel=not records_grad)
    return out
