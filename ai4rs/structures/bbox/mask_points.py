"""Point sets of instance masks, for building boxes from masks without mmdet's mask classes.

Accepted inputs (duck-typed, so mmdet-style mask structures work too):

- a bool / uint8 array of shape (N, H, W), or an object whose ``masks`` attribute is one
  (bitmap masks): the points are the (x, y) pixel indices of the leftmost and rightmost set
  pixel of each row, which have the same convex hull and bounds as all set pixels;
- an object whose ``masks`` attribute is a list (per instance) of lists of flat polygon
  arrays ``[x0, y0, x1, y1, ...]`` (polygon masks), or such a list itself.
"""

import numpy as np


def mask_point_sets(masks) -> list[np.ndarray]:
    """Return one (K_i, 2) float64 array of (x, y) points per instance (K_i may be 0)."""
    data = getattr(masks, 'masks', masks)
    if isinstance(data, np.ndarray):
        if data.ndim != 3:
            raise ValueError(f'bitmap masks must have shape (N, H, W), but got {data.shape}')
        out = []
        for m in data:
            m = np.asarray(m, dtype=bool)
            rows = np.flatnonzero(m.any(axis=1))
            left = m[rows].argmax(axis=1)
            right = m.shape[1] - 1 - m[rows, ::-1].argmax(axis=1)
            xs = np.concatenate([left, right])
            ys = np.concatenate([rows, rows])
            out.append(np.stack([xs, ys], axis=-1).astype(np.float64))
        return out
    if isinstance(data, (list, tuple)):
        out = []
        for polys in data:
            pts = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polys]
            out.append(np.concatenate(pts, axis=0) if pts else np.zeros((0, 2)))
        return out
    raise TypeError(f'masks must be bitmap masks (N, H, W) or polygon masks, but got {type(masks)}')


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Convex hull vertices of (K, 2) points (Andrew's monotone chain); degenerate sets
    return their distinct extreme points."""
    pts = np.unique(points, axis=0)
    if len(pts) <= 2:
        return pts

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower, upper = [], []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in pts[::-1]:
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.array(lower[:-1] + upper[:-1])
