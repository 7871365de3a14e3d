"""Slow, independent references for rotated-box ops, built on shapely polygons."""

import numpy as np
import shapely


def rbox_corners_np(boxes) -> np.ndarray:
    """(N, 5) rotated boxes -> (N, 4, 2) float64 corners (clockwise angle, y down)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
    cos, sin = np.cos(b[:, 4]), np.sin(b[:, 4])
    v1 = np.stack([b[:, 2] / 2 * cos, b[:, 2] / 2 * sin], -1)
    v2 = np.stack([-b[:, 3] / 2 * sin, b[:, 3] / 2 * cos], -1)
    c = b[:, :2]
    return np.stack([c + v1 + v2, c + v1 - v2, c - v1 - v2, c - v1 + v2], 1)


def rbox_polygons(boxes) -> np.ndarray:
    return shapely.polygons(rbox_corners_np(boxes))


def shapely_iou(boxes1, boxes2, mode='iou', aligned=False) -> np.ndarray:
    """IoU / IoF with mmcv's rule that a box of area < 1e-14 gives 0."""
    p1, p2 = rbox_polygons(boxes1), rbox_polygons(boxes2)
    b1 = np.asarray(boxes1, dtype=np.float64).reshape(-1, 5)
    b2 = np.asarray(boxes2, dtype=np.float64).reshape(-1, 5)
    a1, a2 = b1[:, 2] * b1[:, 3], b2[:, 2] * b2[:, 3]
    if not aligned:
        p1, p2, a1, a2 = p1[:, None], p2[None], a1[:, None], a2[None]
    inter = shapely.area(shapely.intersection(p1, p2))
    base = a1 + a2 - inter if mode == 'iou' else a1 * np.ones_like(inter)
    valid = (a1 >= 1e-14) & (a2 >= 1e-14)
    return np.where(valid, inter / np.where(valid, base, 1.0), 0.0)


def greedy_nms_reference(boxes, scores, thr, labels=None) -> list:
    """Textbook greedy NMS with shapely IoUs (stable descending score order, IoU > thr)."""
    b = np.asarray(boxes, dtype=np.float64)
    s = np.asarray(scores)
    order = np.argsort(-s, kind='stable')
    ious = shapely_iou(b, b)
    lab = np.zeros(len(b), dtype=np.int64) if labels is None else np.asarray(labels)
    removed = np.zeros(len(b), dtype=bool)
    keep = []
    for i in order:
        if removed[i]:
            continue
        keep.append(int(i))
        removed |= (ious[i] > thr) & (lab == lab[i])
    return keep


def random_rboxes(rng, n, span=100.0, size=(0.5, 40.0)) -> np.ndarray:
    ctr = rng.uniform(0, span, (n, 2))
    wh = rng.uniform(size[0], size[1], (n, 2))
    t = rng.uniform(-np.pi, np.pi, (n, 1))
    return np.concatenate([ctr, wh, t], axis=1)


def clustered_rboxes(rng, n, clusters, span=300.0):
    """Boxes jittered around ``clusters`` seeds, with random scores: typical NMS input."""
    seeds = random_rboxes(rng, clusters, span=span, size=(8.0, 60.0))
    which = rng.integers(0, clusters, n)
    boxes = seeds[which].copy()
    boxes[:, :2] += rng.normal(0, 3, (n, 2))
    boxes[:, 2:4] *= rng.uniform(0.8, 1.2, (n, 2))
    boxes[:, 4] += rng.normal(0, 0.15, n)
    return boxes, rng.uniform(0, 1, n)
