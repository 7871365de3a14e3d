"""Exact IoU of quadrilaterals (DOTA polygons), as the official DOTA devkit scores them.

All functions take quadrilaterals as ``(N, 8)`` float arrays ``x1 y1 x2 y2 x3 y3 x4 y4`` in
pixel coordinates, vertices in either orientation, and work in float64 numpy.

The devkit first keeps the ground truths whose axis-aligned box overlaps the detection and then
computes the exact polygon IoU of those pairs. Here the same prefilter selects candidate pairs
(:func:`aabb_overlap_pairs`), and the exact IoU of the pairs is vectorised:

- convex quadrilaterals (every rectangle and almost every DOTA annotation): the intersection is
  the convex polygon spanned by the vertices of each quad inside the other and the edge-edge
  crossings, sorted by angle around their mean and measured with the shoelace formula;
- any other quadrilateral (concave, self-intersecting, as a few hand annotations are): shapely
  2's vectorised ``intersection``; self-intersecting rings are first repaired with
  ``shapely.make_valid``.
"""

import numpy as np
import torch

from ai4rs.ops.nms import greedy_from_edges
from ai4rs.ops.rbox_geometry import SortedAABBs, overlap_pairs

# pairs processed per vectorised block (bounds the temporary (chunk, 24, 2) arrays)
_CHUNK = 65536


def _as_quads(polys: np.ndarray, name: str) -> np.ndarray:
    polys = np.asarray(polys, dtype=np.float64)
    if polys.ndim != 2 or polys.shape[1] != 8:
        raise ValueError(f'{name} must have shape (N, 8) (x1 y1 ... x4 y4), got {polys.shape}')
    return polys


def polygon_areas(polys: np.ndarray) -> np.ndarray:
    """Areas of quadrilaterals by the shoelace formula.

    Args:
        polys (np.ndarray): (N, 8) quadrilaterals.

    Returns:
        np.ndarray: (N,) non-negative areas (a self-intersecting ring gets the absolute value
        of its signed area, as the shoelace formula gives it).
    """
    pts = _as_quads(polys, 'polys').reshape(-1, 4, 2)
    nxt = np.roll(pts, -1, axis=1)
    cross = pts[..., 0] * nxt[..., 1] - pts[..., 1] * nxt[..., 0]
    return np.abs(cross.sum(axis=1)) * 0.5


def quad_aabbs(polys: np.ndarray) -> np.ndarray:
    """Axis-aligned bounding boxes of quadrilaterals.

    Args:
        polys (np.ndarray): (N, 8) quadrilaterals.

    Returns:
        np.ndarray: (N, 4) boxes ``x_min, y_min, x_max, y_max``.
    """
    pts = _as_quads(polys, 'polys').reshape(-1, 4, 2)
    return np.concatenate([pts.min(axis=1), pts.max(axis=1)], axis=1)


def aabb_overlap_pairs(aabbs1: np.ndarray, aabbs2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs of axis-aligned boxes whose intersection has positive area.

    Two shapes whose bounding boxes do not overlap with positive area have IoU 0, so these
    pairs are the only ones whose IoU needs computing.

    Args:
        aabbs1 (np.ndarray): (N, 4) boxes ``x_min, y_min, x_max, y_max``.
        aabbs2 (np.ndarray): (M, 4) boxes.

    Returns:
        tuple[np.ndarray, np.ndarray]: (K,) indices into ``aabbs1`` and (K,) indices into
        ``aabbs2``, sorted by the first index and then the second.
    """
    a = np.asarray(aabbs1, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(aabbs2, dtype=np.float64).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    # candidates (overlapping or touching) from the one sweep of ai4rs.ops, then the exact
    # positive-area test on those pairs only
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    i, j = overlap_pairs(ta[:, :2], ta[:, 2:], SortedAABBs(tb[:, :2], tb[:, 2:]))
    i, j = i.numpy(), j.numpy()
    iw = np.minimum(a[i, 2], b[j, 2]) - np.maximum(a[i, 0], b[j, 0])
    ih = np.minimum(a[i, 3], b[j, 3]) - np.maximum(a[i, 1], b[j, 1])
    ok = (iw > 0) & (ih > 0)
    i, j = i[ok], j[ok]
    order = np.lexsort((j, i))
    return i[order].astype(np.int64), j[order].astype(np.int64)


def is_convex_quad(polys: np.ndarray) -> np.ndarray:
    """Whether each quadrilateral is convex (degenerate, zero-area ones count as convex).

    Args:
        polys (np.ndarray): (N, 8) quadrilaterals.

    Returns:
        np.ndarray: (N,) bool. Concave and self-intersecting (bow-tie) quads are False.
    """
    pts = _as_quads(polys, 'polys').reshape(-1, 4, 2)
    edges = np.roll(pts, -1, axis=1) - pts
    nxt = np.roll(edges, -1, axis=1)
    turn = edges[..., 0] * nxt[..., 1] - edges[..., 1] * nxt[..., 0]
    scale = np.abs(edges).sum(axis=(1, 2)) ** 2
    tol = 1e-12 * scale[:, None]
    return np.all(turn >= -tol, axis=1) | np.all(turn <= tol, axis=1)


def _ccw(pts: np.ndarray) -> np.ndarray:
    """(K, 4, 2) convex quads reordered counter-clockwise (in a y-up frame)."""
    nxt = np.roll(pts, -1, axis=1)
    signed = (pts[..., 0] * nxt[..., 1] - pts[..., 1] * nxt[..., 0]).sum(axis=1)
    return np.where((signed < 0)[:, None, None], pts[:, ::-1], pts)


def _inside_convex(points: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """(K, P) whether points (K, P, 2) lie in (or on) the CCW convex quads (K, 4, 2)."""
    edge = np.roll(quad, -1, axis=1) - quad  # (K, 4, 2)
    rel = points[:, :, None, :] - quad[:, None, :, :]  # (K, P, 4, 2)
    cross = edge[:, None, :, 0] * rel[..., 1] - edge[:, None, :, 1] * rel[..., 0]
    tol = 1e-9 * np.linalg.norm(edge, axis=-1)[:, None, :] * np.linalg.norm(rel, axis=-1)
    return np.all(cross >= -tol, axis=-1)


def _convex_intersection_areas(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Intersection areas of aligned pairs of convex quads, (K, 4, 2) each -> (K,)."""
    p = _ccw(p)
    q = _ccw(q)
    k = len(p)
    # vertices of each quad inside the other
    p_in_q = _inside_convex(p, q)
    q_in_p = _inside_convex(q, p)
    # crossings of every edge of p with every edge of q: (K, 4, 4)
    dp = np.roll(p, -1, axis=1) - p
    dq = np.roll(q, -1, axis=1) - q
    w = q[:, None, :, :] - p[:, :, None, :]  # q_j - p_i
    den = dp[:, :, None, 0] * dq[:, None, :, 1] - dp[:, :, None, 1] * dq[:, None, :, 0]
    t_num = w[..., 0] * dq[:, None, :, 1] - w[..., 1] * dq[:, None, :, 0]
    u_num = w[..., 0] * dp[:, :, None, 1] - w[..., 1] * dp[:, :, None, 0]
    nonpar = den != 0
    safe = np.where(nonpar, den, 1.0)
    t = t_num / safe
    u = u_num / safe
    cross_ok = nonpar & (t >= 0) & (t <= 1) & (u >= 0) & (u <= 1)
    cross_pts = p[:, :, None, :] + t[..., None] * dp[:, :, None, :]
    points = np.concatenate([p, q, cross_pts.reshape(k, 16, 2)], axis=1)  # (K, 24, 2)
    valid = np.concatenate([p_in_q, q_in_p, cross_ok.reshape(k, 16)], axis=1)
    count = valid.sum(axis=1)
    centre = (points * valid[..., None]).sum(axis=1) / np.maximum(count, 1)[:, None]
    rel = points - centre[:, None, :]
    angle = np.where(valid, np.arctan2(rel[..., 1], rel[..., 0]), np.inf)
    order = np.argsort(angle, axis=1, kind='stable')
    rel = np.take_along_axis(rel, order[..., None], axis=1)
    valid = np.take_along_axis(valid, order, axis=1)
    # invalid slots (sorted last) repeat the first point, so they add no area to the ring
    rel = np.where(valid[..., None], rel, rel[:, :1, :])
    nxt = np.roll(rel, -1, axis=1)
    area = 0.5 * np.abs((rel[..., 0] * nxt[..., 1] - rel[..., 1] * nxt[..., 0]).sum(axis=1))
    return np.where(count >= 3, area, 0.0)


def _shapely_polygons(polys: np.ndarray):
    import shapely

    geoms = shapely.polygons(polys.reshape(-1, 4, 2))
    bad = ~shapely.is_valid(geoms)
    if bad.any():
        geoms[bad] = shapely.make_valid(geoms[bad])
    return geoms


def polygon_iou_aligned(polys1: np.ndarray, polys2: np.ndarray) -> np.ndarray:
    """Exact IoU of aligned pairs of quadrilaterals.

    IoU = area(p ∩ q) / (area(p) + area(q) - area(p ∩ q)), 0 when the union is empty.

    Args:
        polys1 (np.ndarray): (K, 8) quadrilaterals.
        polys2 (np.ndarray): (K, 8) quadrilaterals.

    Returns:
        np.ndarray: (K,) float64 IoUs in [0, 1].
    """
    polys1 = _as_quads(polys1, 'polys1')
    polys2 = _as_quads(polys2, 'polys2')
    if polys1.shape != polys2.shape:
        raise ValueError(
            f'polys1 and polys2 must be aligned, got {polys1.shape} and {polys2.shape}'
        )
    k = len(polys1)
    inter = np.zeros(k, dtype=np.float64)
    convex = is_convex_quad(polys1) & is_convex_quad(polys2)
    idx = np.nonzero(convex)[0]
    for s in range(0, len(idx), _CHUNK):
        sel = idx[s : s + _CHUNK]
        inter[sel] = _convex_intersection_areas(
            polys1[sel].reshape(-1, 4, 2), polys2[sel].reshape(-1, 4, 2)
        )
    other = np.nonzero(~convex)[0]
    area1 = polygon_areas(polys1)
    area2 = polygon_areas(polys2)
    if len(other):
        import shapely

        g1 = _shapely_polygons(polys1[other])
        g2 = _shapely_polygons(polys2[other])
        inter[other] = shapely.area(shapely.intersection(g1, g2))
        area1[other] = shapely.area(g1)
        area2[other] = shapely.area(g2)
    union = area1 + area2 - inter
    ious = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return np.clip(ious, 0.0, 1.0)


def polygon_iou(polys1: np.ndarray, polys2: np.ndarray) -> np.ndarray:
    """Exact IoU matrix of two sets of quadrilaterals.

    Args:
        polys1 (np.ndarray): (N, 8) quadrilaterals.
        polys2 (np.ndarray): (M, 8) quadrilaterals.

    Returns:
        np.ndarray: (N, M) float64 IoUs; pairs whose bounding boxes do not overlap are 0.
    """
    polys1 = _as_quads(polys1, 'polys1')
    polys2 = _as_quads(polys2, 'polys2')
    ious = np.zeros((len(polys1), len(polys2)), dtype=np.float64)
    i, j = aabb_overlap_pairs(quad_aabbs(polys1), quad_aabbs(polys2))
    if len(i):
        ious[i, j] = polygon_iou_aligned(polys1[i], polys2[j])
    return ious


def polygon_nms(polys: np.ndarray, scores: np.ndarray, iou_thr: float) -> np.ndarray:
    """Greedy non-maximum suppression of quadrilaterals by exact polygon IoU.

    Walking the boxes by descending score (ties: lower index first), a box is kept unless a
    kept box overlaps it with IoU > ``iou_thr``.

    Args:
        polys (np.ndarray): (N, 8) quadrilaterals.
        scores (np.ndarray): (N,) scores.
        iou_thr (float): suppression threshold.

    Returns:
        np.ndarray: (K,) int64 indices of the kept boxes, by descending score.
    """
    polys = _as_quads(polys, 'polys')
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(scores) != len(polys):
        raise ValueError(f'{len(polys)} polys but {len(scores)} scores')
    order = np.argsort(-scores, kind='stable')
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    i, j = aabb_overlap_pairs(quad_aabbs(polys), quad_aabbs(polys))
    # each unordered pair once, from the higher-ranked box to the lower-ranked one
    sel = rank[i] < rank[j]
    i, j = i[sel], j[sel]
    over = polygon_iou_aligned(polys[i], polys[j]) > iou_thr
    i, j = i[over], j[over]
    # the same greedy walk as the rotated NMS, on ranks
    kept_ranks = greedy_from_edges(rank[i], rank[j], len(polys))
    return order[kept_ranks].astype(np.int64)
