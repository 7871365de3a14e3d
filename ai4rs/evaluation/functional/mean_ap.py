"""Mean average precision for oriented boxes: mmrotate's ``eval_rbbox_map`` and the DOTA devkit.

Two matching semantics (``mode``):

``'mmrotate'`` (mmrotate 1.x ``eval_rbbox_map``)
    IoU of rotated rectangles (:func:`ai4rs.ops.box_iou_rotated`, float32 like mmcv's CPU
    kernel) for ``box_type='rbox'``, exact quadrilateral IoU for ``'qbox'``; a detection
    matches when IoU >= ``iou_thr``; mAP averages the classes that have ground truth.
``'devkit'`` (the official ``dota_evaluation_task1.py``)
    exact polygon IoU in float64 (rboxes are turned into their corner polygons); a detection
    matches when IoU > ``iou_thr``; mAP averages *all* classes (a class without ground truth
    scores 0). Difficult objects are passed as the ignored ground truth.

In both modes every detection is compared with all ground truths of its image and class
(valid ones first, then ignored ones) and is assigned to the one of highest IoU (ties: the
first). Walking the detections by descending score: assigned to an ignored ground truth and
matched -> neither TP nor FP; matched and the ground truth not yet covered -> TP; otherwise
FP (also when another, uncovered ground truth overlaps it). Because the assignment does not
depend on what is covered, the walk is computed without a Python loop: the TP of a ground
truth is the first matched detection (in score order) assigned to it.

Only the pairs whose axis-aligned boxes overlap get an exact IoU (the others have IoU 0), as
the devkit does, so evaluating DOTA-val-sized results takes seconds.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from mmengine.logging import print_log

from ai4rs.ops import box_iou_rotated
from ai4rs.structures.bbox import boxes_from_tensor

from .polygon_iou import aabb_overlap_pairs, polygon_areas, polygon_iou_aligned, quad_aabbs

BOX_DIMS = {'rbox': 5, 'qbox': 8}
MODES = ('mmrotate', 'devkit')
# recall thresholds of the VOC07 11-point AP, exactly as mmdet and the DOTA devkit build them
# (np.arange gives 0.30000000000000004, 0.6000000000000001, 0.7000000000000001: a recall of
# exactly 0.3, 0.6 or 0.7 does not reach those points, in all three implementations alike)
_VOC07_RECALLS = np.arange(0.0, 1.1, 0.1)
# pairs per box_iou_rotated call (bounds its temporary memory)
_IOU_CHUNK = 200000


def _check_box_type(box_type: str) -> int:
    if box_type not in BOX_DIMS:
        raise ValueError(f"box_type must be 'rbox' or 'qbox', got {box_type!r}")
    return BOX_DIMS[box_type]


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be 'mmrotate' or 'devkit', got {mode!r}")


def _check_iou_thr(iou_thr: float) -> None:
    if not 0 < float(iou_thr) <= 1:
        raise ValueError(f'iou_thr must be in (0, 1], got {iou_thr!r}')


def average_precision(
    recalls: np.ndarray, precisions: np.ndarray, mode: str = 'area'
) -> float | np.ndarray:
    """Average precision from a precision-recall curve (mmdet's ``average_precision``).

    Args:
        recalls (np.ndarray): (K,) or (S, K) recalls of the detections in score order.
        precisions (np.ndarray): same shape, the precisions.
        mode (str): ``'area'``: area under the curve after making precision non-increasing
            from the right (recall padded with 0 and 1, precision with 0 and 0);
            ``'11points'``: mean over t = 0, 0.1, ..., 1 of the highest precision at
            recall >= t (0 when no recall reaches t), the VOC07 metric.

    Returns:
        float for 1-D input, else (S,) array.
    """
    if mode not in ('area', '11points'):
        raise ValueError(f"mode must be 'area' or '11points', got {mode!r}")
    recalls = np.asarray(recalls, dtype=np.float64)
    precisions = np.asarray(precisions, dtype=np.float64)
    if recalls.shape != precisions.shape:
        raise ValueError(
            f'recalls and precisions differ in shape: {recalls.shape} vs {precisions.shape}'
        )
    single = recalls.ndim == 1
    if single:
        recalls = recalls[None]
        precisions = precisions[None]
    num_scales = recalls.shape[0]
    ap = np.zeros(num_scales, dtype=np.float64)
    if mode == 'area':
        zeros = np.zeros((num_scales, 1))
        mrec = np.hstack((zeros, recalls, np.ones((num_scales, 1))))
        mpre = np.hstack((zeros, precisions, zeros))
        mpre = np.maximum.accumulate(mpre[:, ::-1], axis=1)[:, ::-1]
        for i in range(num_scales):
            ind = np.nonzero(mrec[i, 1:] != mrec[i, :-1])[0]
            ap[i] = np.sum((mrec[i, ind + 1] - mrec[i, ind]) * mpre[i, ind + 1])
    else:
        for i in range(num_scales):
            for thr in _VOC07_RECALLS:
                precs = precisions[i, recalls[i] >= thr]
                ap[i] += precs.max() if precs.size > 0 else 0.0
        ap /= len(_VOC07_RECALLS)
    return float(ap[0]) if single else ap


def box_areas(boxes: np.ndarray, box_type: str) -> np.ndarray:
    """Areas of (N, 5) rboxes (w * h) or (N, 8) qboxes (shoelace) -> (N,)."""
    dim = _check_box_type(box_type)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, dim)
    if box_type == 'rbox':
        return boxes[:, 2] * boxes[:, 3]
    return polygon_areas(boxes)


def boxes_to_polygons(boxes: np.ndarray, box_type: str) -> np.ndarray:
    """The box-to-polygon helper of ai4rs: (N, 5) rboxes or (N, 8) qboxes -> (N, 8) float64
    corner polygons.

    The array is wrapped as ``box_type`` (:func:`ai4rs.structures.bbox.boxes_from_tensor`)
    and converted with ``convert_to('qbox')``: rbox corners in the order c+v1+v2, c+v1-v2,
    c-v1-v2, c-v1+v2 (:func:`ai4rs.structures.bbox.rbox2qbox`).
    """
    dim = _check_box_type(box_type)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, dim)
    if box_type == 'qbox':
        return boxes
    qboxes = boxes_from_tensor(torch.from_numpy(boxes), box_type).convert_to('qbox')
    return qboxes.tensor.numpy().astype(np.float64).reshape(-1, 8)


def pair_ious(
    boxes1: np.ndarray, boxes2: np.ndarray, box_type: str = 'rbox', mode: str = 'mmrotate'
) -> np.ndarray:
    """IoU of aligned pairs of boxes with the semantics of ``mode``.

    Args:
        boxes1 (np.ndarray): (K, 5) rboxes or (K, 8) qboxes.
        boxes2 (np.ndarray): same shape.
        box_type (str): 'rbox' or 'qbox'.
        mode (str): 'mmrotate': rboxes by :func:`ai4rs.ops.box_iou_rotated` in float32
            (returned as float32 values), qboxes by exact polygon IoU; 'devkit': exact
            polygon IoU in float64.

    Returns:
        np.ndarray: (K,) float64 IoUs.
    """
    dim = _check_box_type(box_type)
    _check_mode(mode)
    boxes1 = np.asarray(boxes1, dtype=np.float64).reshape(-1, dim)
    boxes2 = np.asarray(boxes2, dtype=np.float64).reshape(-1, dim)
    if len(boxes1) != len(boxes2):
        raise ValueError(
            f'boxes1 and boxes2 must be aligned, got {len(boxes1)} and {len(boxes2)} boxes'
        )
    if mode == 'mmrotate' and box_type == 'rbox':
        out = np.zeros(len(boxes1), dtype=np.float64)
        b1 = torch.from_numpy(boxes1).float()
        b2 = torch.from_numpy(boxes2).float()
        with torch.no_grad():
            for s in range(0, len(boxes1), _IOU_CHUNK):
                ious = box_iou_rotated(b1[s : s + _IOU_CHUNK], b2[s : s + _IOU_CHUNK], aligned=True)
                out[s : s + _IOU_CHUNK] = ious.float().cpu().numpy()
        return out
    return polygon_iou_aligned(
        boxes_to_polygons(boxes1, box_type), boxes_to_polygons(boxes2, box_type)
    )


@dataclass
class DetectionMatches:
    """Every detection of an evaluation with the ground truth it is assigned to.

    The matching does not depend on the IoU threshold, so one ``DetectionMatches`` serves
    any number of thresholds (:func:`eval_matches`). D detections and G ground truths of all
    images and classes, flattened (images in order; within an image and class, valid ground
    truths before ignored ones).

    Attributes:
        num_classes (int): number of classes C.
        mode (str): 'mmrotate' or 'devkit'.
        det_scores (np.ndarray): (D,) float64 scores.
        det_labels (np.ndarray): (D,) int64 classes.
        det_areas (np.ndarray): (D,) float64 areas (for ``scale_ranges``).
        best_gt (np.ndarray): (D,) int64 index of the assigned ground truth, -1 when no
            ground truth of the image and class overlaps the detection.
        best_iou (np.ndarray): (D,) float64 IoU with it (0 when none).
        gt_labels (np.ndarray): (G,) int64 classes.
        gt_ignore (np.ndarray): (G,) bool, True for ignored (difficult) ground truths.
        gt_areas (np.ndarray): (G,) float64 areas.
    """

    num_classes: int
    mode: str
    det_scores: np.ndarray
    det_labels: np.ndarray
    det_areas: np.ndarray
    best_gt: np.ndarray
    best_iou: np.ndarray
    gt_labels: np.ndarray
    gt_ignore: np.ndarray
    gt_areas: np.ndarray


def _as_boxes(arr, dim: int, what: str) -> np.ndarray:
    arr = np.asarray(arr, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, dim), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f'{what} must have shape (n, {dim}), got {arr.shape}')
    return arr


def _flatten_dets(det_results, num_classes: int, dim: int):
    boxes, scores, labels, imgs = [], [], [], []
    for i, per_img in enumerate(det_results):
        if len(per_img) != num_classes:
            raise ValueError(
                f'det_results[{i}] has {len(per_img)} classes, det_results[0] has {num_classes}'
            )
        for c, dets in enumerate(per_img):
            dets = _as_boxes(dets, dim + 1, f'det_results[{i}][{c}] (boxes + score)')
            if len(dets):
                boxes.append(dets[:, :dim])
                scores.append(dets[:, dim])
                labels.append(np.full(len(dets), c, dtype=np.int64))
                imgs.append(np.full(len(dets), i, dtype=np.int64))
    if not boxes:
        return (np.zeros((0, dim)), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64))
    return (
        np.concatenate(boxes),
        np.concatenate(scores),
        np.concatenate(labels),
        np.concatenate(imgs),
    )


def _flatten_gts(annotations, dim: int):
    boxes, labels, imgs, ignore = [], [], [], []
    for i, ann in enumerate(annotations):
        for key_b, key_l, flag in (
            ('bboxes', 'labels', False),
            ('bboxes_ignore', 'labels_ignore', True),
        ):
            if key_b not in ann or ann[key_b] is None:
                continue
            b = _as_boxes(ann[key_b], dim, f'annotations[{i}][{key_b!r}]')
            lab = np.asarray(ann.get(key_l, np.zeros(0)), dtype=np.int64).reshape(-1)
            if len(lab) != len(b):
                raise ValueError(f'annotations[{i}]: {len(b)} {key_b} but {len(lab)} {key_l}')
            if len(b):
                boxes.append(b)
                labels.append(lab)
                imgs.append(np.full(len(b), i, dtype=np.int64))
                ignore.append(np.full(len(b), flag))
    if not boxes:
        return np.zeros((0, dim)), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool)
    return (
        np.concatenate(boxes),
        np.concatenate(labels),
        np.concatenate(imgs),
        np.concatenate(ignore),
    )


def _candidate_pairs(det_key, det_aabb, gt_key, gt_aabb) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (det, gt) of the same group key whose bounding boxes overlap."""
    d_order = np.argsort(det_key, kind='stable')
    g_order = np.argsort(gt_key, kind='stable')
    dk = det_key[d_order]
    gk = gt_key[g_order]
    keys = np.intersect1d(dk, gk)
    d_lo = np.searchsorted(dk, keys, 'left')
    d_hi = np.searchsorted(dk, keys, 'right')
    g_lo = np.searchsorted(gk, keys, 'left')
    g_hi = np.searchsorted(gk, keys, 'right')
    di_all, gj_all = [], []
    for a, b, c, d in zip(d_lo, d_hi, g_lo, g_hi):
        di, gj = aabb_overlap_pairs(det_aabb[d_order[a:b]], gt_aabb[g_order[c:d]])
        if len(di):
            di_all.append(d_order[a:b][di])
            gj_all.append(g_order[c:d][gj])
    if not di_all:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    return np.concatenate(di_all), np.concatenate(gj_all)


def best_ground_truths(
    num_dets: int, det_idx: np.ndarray, gt_idx: np.ndarray, ious: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each detection, the candidate ground truth of highest IoU (ties: lowest index).

    Args:
        num_dets (int): D.
        det_idx (np.ndarray): (K,) detection index of each candidate pair.
        gt_idx (np.ndarray): (K,) ground-truth index of each pair.
        ious (np.ndarray): (K,) IoU of each pair.

    Returns:
        tuple: (D,) int64 ground-truth index (-1 for a detection without candidate) and
        (D,) float64 IoU (0 without candidate).
    """
    best_gt = np.full(num_dets, -1, dtype=np.int64)
    best_iou = np.zeros(num_dets, dtype=np.float64)
    if len(det_idx):
        order = np.lexsort((gt_idx, -ious, det_idx))
        first = np.unique(det_idx[order], return_index=True)[1]
        sel = order[first]
        best_gt[det_idx[sel]] = gt_idx[sel]
        best_iou[det_idx[sel]] = ious[sel]
    return best_gt, best_iou


def match_detections(
    det_results: Sequence[Sequence[np.ndarray]],
    annotations: Sequence[dict],
    box_type: str = 'rbox',
    mode: str = 'mmrotate',
    num_classes: int | None = None,
) -> DetectionMatches:
    """Assign every detection to its ground truth of highest IoU (independent of thresholds).

    Args:
        det_results (list[list[np.ndarray]]): per image, per class, (k, 6) ``rbox + score``
            or (k, 9) ``qbox + score`` arrays.
        annotations (list[dict]): per image ``bboxes`` (n, 5|8), ``labels`` (n,), and
            optionally ``bboxes_ignore`` (k, 5|8), ``labels_ignore`` (k,).
        box_type (str): 'rbox' or 'qbox', the box format of both.
        mode (str): 'mmrotate' or 'devkit' (the IoU used, see the module docstring).
        num_classes (int, optional): defaults to ``len(det_results[0])``.

    Returns:
        DetectionMatches
    """
    dim = _check_box_type(box_type)
    _check_mode(mode)
    if len(det_results) != len(annotations):
        raise ValueError(
            f'det_results has {len(det_results)} images but annotations has {len(annotations)}'
        )
    if num_classes is None:
        num_classes = len(det_results[0]) if len(det_results) else 0
    d_boxes, d_scores, d_labels, d_imgs = _flatten_dets(det_results, num_classes, dim)
    g_boxes, g_labels, g_imgs, g_ignore = _flatten_gts(annotations, dim)
    if len(g_labels) and (g_labels.min() < 0 or g_labels.max() >= num_classes):
        raise ValueError(
            f'annotation labels must be in [0, {num_classes}), got '
            f'{g_labels.min()}..{g_labels.max()}'
        )
    # ground truths grouped by (image, class), valid before ignored within a group
    g_sort = np.lexsort((g_labels, g_imgs))
    g_boxes, g_labels, g_imgs, g_ignore = (
        g_boxes[g_sort],
        g_labels[g_sort],
        g_imgs[g_sort],
        g_ignore[g_sort],
    )
    d_polys = boxes_to_polygons(d_boxes, box_type)
    g_polys = boxes_to_polygons(g_boxes, box_type)
    di, gj = _candidate_pairs(
        d_imgs * num_classes + d_labels,
        quad_aabbs(d_polys),
        g_imgs * num_classes + g_labels,
        quad_aabbs(g_polys),
    )
    if mode == 'devkit' or box_type == 'qbox':
        ious = polygon_iou_aligned(d_polys[di], g_polys[gj])
    else:
        ious = pair_ious(d_boxes[di], g_boxes[gj], box_type, mode)
    best_gt, best_iou = best_ground_truths(len(d_scores), di, gj, ious)
    return DetectionMatches(
        num_classes=num_classes,
        mode=mode,
        det_scores=d_scores,
        det_labels=d_labels,
        det_areas=box_areas(d_boxes, box_type),
        best_gt=best_gt,
        best_iou=best_iou,
        gt_labels=g_labels,
        gt_ignore=g_ignore,
        gt_areas=box_areas(g_boxes, box_type),
    )


def tpfp_from_matches(
    order: np.ndarray,
    best_gt: np.ndarray,
    best_iou: np.ndarray,
    gt_ignore: np.ndarray,
    iou_thr: float,
    mode: str = 'mmrotate',
    gt_area_ignore: np.ndarray | None = None,
    det_in_range: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives of detections already assigned to ground truths.

    Args:
        order (np.ndarray): (m,) detection indices by descending score.
        best_gt (np.ndarray): (m,) assigned ground truth (-1: none).
        best_iou (np.ndarray): (m,) IoU with it.
        gt_ignore (np.ndarray): (G,) bool, ignored ground truths.
        iou_thr (float): match threshold; IoU >= thr ('mmrotate') or IoU > thr ('devkit').
        mode (str): 'mmrotate' or 'devkit'.
        gt_area_ignore (np.ndarray, optional): (S, G) bool, ground truths outside scale
            range s (treated as ignored for that range).
        det_in_range (np.ndarray, optional): (S, m) bool, whether an unmatched detection
            lies in scale range s (an unmatched one outside the range is not an FP).

    Returns:
        tuple[np.ndarray, np.ndarray]: tp and fp, (S, m) float32 of 0/1 in detection index
        order (S = 1 without scale ranges).
    """
    _check_mode(mode)
    m = len(best_gt)
    num_gts = len(gt_ignore)
    if gt_area_ignore is None:
        gt_area_ignore = np.zeros((1, num_gts), dtype=bool)
    if det_in_range is None:
        det_in_range = np.ones((len(gt_area_ignore), m), dtype=bool)
    num_scales = len(gt_area_ignore)
    tp = np.zeros((num_scales, m), dtype=np.float32)
    fp = np.zeros((num_scales, m), dtype=np.float32)
    has_gt = best_gt >= 0
    if mode == 'mmrotate':
        matched = has_gt & (best_iou >= iou_thr)
    else:
        matched = has_gt & (best_iou > iou_thr)
    target = np.where(has_gt, best_gt, 0)
    for k in range(num_scales):
        ignored = np.zeros(m, dtype=bool)
        if num_gts:
            ignored = matched & (gt_ignore | gt_area_ignore[k])[target]
        live = matched & ~ignored
        ordered = order[live[order]]
        first = ordered[np.unique(best_gt[ordered], return_index=True)[1]]
        fp[k, live] = 1
        fp[k, first] = 0
        tp[k, first] = 1
        fp[k, ~matched & det_in_range[k]] = 1
    return tp, fp


def _area_ranges(scale_ranges):
    if scale_ranges is None:
        return None
    return [(lo**2, hi**2) for lo, hi in scale_ranges]


def eval_matches(
    matches: DetectionMatches,
    iou_thr: float = 0.5,
    use_07_metric: bool = True,
    scale_ranges: list[tuple] | None = None,
) -> tuple[object, list[dict]]:
    """Per-class AP and mAP at one IoU threshold from :func:`match_detections`.

    Args:
        matches (DetectionMatches): the assigned detections.
        iou_thr (float): IoU threshold in (0, 1].
        use_07_metric (bool): 11-point AP (True) or area AP (False).
        scale_ranges (list[tuple], optional): ``(min, max)`` side lengths; a range keeps
            ground truths of area in [min**2, max**2) (the others are ignored) and counts an
            unmatched detection as FP only if its area is in the range.

    Returns:
        tuple: mAP (float, or a list of floats with ``scale_ranges``) and a list with one
        dict per class: ``num_gts`` (non-ignored ground truths), ``num_dets``, ``recall``,
        ``precision`` (arrays in score order) and ``ap``.
    """
    _check_iou_thr(iou_thr)
    area_ranges = _area_ranges(scale_ranges)
    ranges = area_ranges if area_ranges is not None else [(None, None)]
    eps = np.finfo(np.float32).eps
    eval_results = []
    for c in range(matches.num_classes):
        det_sel = np.nonzero(matches.det_labels == c)[0]
        gt_sel = np.nonzero(matches.gt_labels == c)[0]
        scores = matches.det_scores[det_sel]
        order = np.argsort(-scores, kind='stable')
        # remap ground-truth indices into this class
        gt_local = np.full(len(matches.gt_labels), -1, dtype=np.int64)
        gt_local[gt_sel] = np.arange(len(gt_sel))
        best_gt = matches.best_gt[det_sel].copy()
        assigned = best_gt >= 0
        # (an evaluation without any ground truth has nothing to index: every entry is -1)
        best_gt[assigned] = gt_local[best_gt[assigned]]
        gt_ignore = matches.gt_ignore[gt_sel]
        gt_areas = matches.gt_areas[gt_sel]
        det_areas = matches.det_areas[det_sel]
        if area_ranges is None:
            gt_area_ignore = np.zeros((1, len(gt_sel)), dtype=bool)
            det_in_range = np.ones((1, len(det_sel)), dtype=bool)
        else:
            gt_area_ignore = np.stack([(gt_areas < lo) | (gt_areas >= hi) for lo, hi in ranges])
            det_in_range = np.stack([(det_areas >= lo) & (det_areas < hi) for lo, hi in ranges])
        tp, fp = tpfp_from_matches(
            order,
            best_gt,
            matches.best_iou[det_sel],
            gt_ignore,
            iou_thr,
            matches.mode,
            gt_area_ignore,
            det_in_range,
        )
        num_gts = (~gt_ignore[None] & ~gt_area_ignore).sum(axis=1).astype(np.int64)
        # float64 like the devkit (mmrotate accumulates in float32: differences ~1e-8)
        tp = np.cumsum(tp[:, order].astype(np.float64), axis=1)
        fp = np.cumsum(fp[:, order].astype(np.float64), axis=1)
        recalls = tp / np.maximum(num_gts[:, None], eps)
        precisions = tp / np.maximum(tp + fp, eps)
        mode = '11points' if use_07_metric else 'area'
        if area_ranges is None:
            recalls, precisions = recalls[0], precisions[0]
            num_gts = int(num_gts[0])
        ap = average_precision(recalls, precisions, mode)
        eval_results.append(
            dict(
                num_gts=num_gts, num_dets=len(det_sel), recall=recalls, precision=precisions, ap=ap
            )
        )
    return _mean_ap(eval_results, matches.mode, area_ranges is not None, len(ranges)), eval_results


def mean_ap_of_classes(
    eval_results: list[dict], mode: str = 'mmrotate', class_indices: Sequence[int] | None = None
) -> float | list[float]:
    """mAP of some classes, with the rule of the overall mAP of :func:`eval_matches`.

    ``'mmrotate'`` averages the selected classes that have ground truth (non-ignored, in the
    scale range), ``'devkit'`` all selected classes (a class without ground truth has AP 0);
    0.0 when no class is averaged. With ``class_indices=None`` (all classes) this is the mAP
    that :func:`eval_matches` returns.

    Args:
        eval_results (list[dict]): per-class dicts of :func:`eval_matches` (``ap``,
            ``num_gts``: scalars, or (S,) arrays with ``scale_ranges``).
        mode (str): 'mmrotate' or 'devkit'.
        class_indices (Sequence[int], optional): the classes to average (indices into
            ``eval_results``). Defaults to all.

    Returns:
        float, or a list of S floats when the results have scale ranges.
    """
    _check_mode(mode)
    multi_scale = bool(eval_results) and np.ndim(eval_results[0]['ap']) > 0
    num_scales = len(np.atleast_1d(eval_results[0]['ap'])) if eval_results else 1
    if class_indices is not None:
        indices = [int(i) for i in class_indices]
        bad = [i for i in indices if not 0 <= i < len(eval_results)]
        if bad:
            raise ValueError(
                f'class_indices {bad} out of range for {len(eval_results)} per-class results'
            )
        eval_results = [eval_results[i] for i in indices]
    return _mean_ap(eval_results, mode, multi_scale, num_scales)


def _mean_ap(eval_results, mode, multi_scale, num_scales):
    if not eval_results:
        return [0.0] * num_scales if multi_scale else 0.0
    aps = np.array([np.atleast_1d(r['ap']) for r in eval_results], dtype=np.float64)
    gts = np.array([np.atleast_1d(r['num_gts']) for r in eval_results])
    mean = []
    for s in range(num_scales):
        keep = np.ones(len(aps), bool) if mode == 'devkit' else gts[:, s] > 0
        mean.append(float(aps[keep, s].mean()) if keep.any() else 0.0)
    return mean if multi_scale else mean[0]


def tpfp_default(
    det_bboxes: np.ndarray,
    gt_bboxes: np.ndarray,
    gt_bboxes_ignore: np.ndarray | None = None,
    iou_thr: float = 0.5,
    box_type: str = 'rbox',
    area_ranges: list[tuple] | None = None,
    mode: str = 'mmrotate',
) -> tuple[np.ndarray, np.ndarray]:
    """TP/FP of the detections of one image and one class (mmrotate's ``tpfp_default``).

    Args:
        det_bboxes (np.ndarray): (m, 6) ``rbox + score`` or (m, 9) ``qbox + score``.
        gt_bboxes (np.ndarray): (n, 5) or (n, 8) ground truths.
        gt_bboxes_ignore (np.ndarray, optional): (k, 5) or (k, 8) ignored ground truths.
        iou_thr (float): IoU threshold.
        box_type (str): 'rbox' or 'qbox'.
        area_ranges (list[tuple], optional): ``(min_area, max_area)`` ranges.
        mode (str): 'mmrotate' or 'devkit'.

    Returns:
        tuple[np.ndarray, np.ndarray]: tp and fp, (num_scales, m) float32 of 0/1.
    """
    _check_iou_thr(iou_thr)
    dim = _check_box_type(box_type)
    det_bboxes = _as_boxes(det_bboxes, dim + 1, 'det_bboxes')
    gt_bboxes = _as_boxes(gt_bboxes, dim, 'gt_bboxes')
    ignore = _as_boxes(
        gt_bboxes_ignore if gt_bboxes_ignore is not None else np.zeros((0, dim)),
        dim,
        'gt_bboxes_ignore',
    )
    ann = dict(
        bboxes=gt_bboxes,
        labels=np.zeros(len(gt_bboxes), np.int64),
        bboxes_ignore=ignore,
        labels_ignore=np.zeros(len(ignore), np.int64),
    )
    matches = match_detections([[det_bboxes]], [ann], box_type, mode, num_classes=1)
    order = np.argsort(-matches.det_scores, kind='stable')
    if area_ranges is None:
        return tpfp_from_matches(
            order, matches.best_gt, matches.best_iou, matches.gt_ignore, iou_thr, mode
        )
    gt_area_ignore = np.stack(
        [(matches.gt_areas < lo) | (matches.gt_areas >= hi) for lo, hi in area_ranges]
    )
    det_in_range = np.stack(
        [(matches.det_areas >= lo) & (matches.det_areas < hi) for lo, hi in area_ranges]
    )
    return tpfp_from_matches(
        order,
        matches.best_gt,
        matches.best_iou,
        matches.gt_ignore,
        iou_thr,
        mode,
        gt_area_ignore,
        det_in_range,
    )


def eval_rbbox_map(
    det_results: Sequence[Sequence[np.ndarray]],
    annotations: Sequence[dict],
    scale_ranges: list[tuple] | None = None,
    iou_thr: float = 0.5,
    use_07_metric: bool = True,
    box_type: str = 'rbox',
    dataset: Sequence[str] | str | None = None,
    logger=None,
    nproc: int = 4,
    mode: str = 'mmrotate',
) -> tuple[object, list[dict]]:
    """Evaluate the mAP of oriented detections (mmrotate's ``eval_rbbox_map``).

    Args:
        det_results (list[list[np.ndarray]]): ``[[cls1_det, cls2_det, ...], ...]``, per image
            and class (k, 6) ``cx cy w h t score`` or (k, 9) ``x1 y1 ... x4 y4 score``.
        annotations (list[dict]): per image ``bboxes`` (n, 5|8), ``labels`` (n,), and
            optionally ``bboxes_ignore`` (k, 5|8), ``labels_ignore`` (k,).
        scale_ranges (list[tuple], optional): ``(min, max)`` side lengths of box scales to
            evaluate separately (area in [min**2, max**2)). Defaults to None (all boxes).
        iou_thr (float): IoU threshold. Defaults to 0.5.
        use_07_metric (bool): VOC07 11-point AP if True, area AP otherwise.
        box_type (str): 'rbox' or 'qbox'.
        dataset (list[str] | str, optional): class names for the summary table.
        logger (logging.Logger | str, optional): where the table goes (mmengine
            ``print_log``); ``'silent'`` prints nothing.
        nproc (int): accepted for compatibility; the evaluation is vectorised in-process.
        mode (str): 'mmrotate' (default) or 'devkit', see the module docstring.

    Returns:
        tuple: (mAP, list of per-class dicts with ``num_gts``, ``num_dets``, ``recall``,
        ``precision``, ``ap``). With ``scale_ranges`` mAP is a list, one per range.
    """
    _check_iou_thr(iou_thr)
    matches = match_detections(det_results, annotations, box_type, mode)
    mean_ap, eval_results = eval_matches(matches, iou_thr, use_07_metric, scale_ranges)
    print_map_summary(mean_ap, eval_results, dataset, scale_ranges, logger=logger)
    return mean_ap, eval_results


def print_map_summary(
    mean_ap,
    results: list[dict],
    dataset=None,
    scale_ranges=None,
    logger=None,
    group_aps: dict | None = None,
) -> None:
    """Log a table of ground truths, detections, recall and AP per class, and the mAP.

    Args:
        mean_ap (float | list[float]): from :func:`eval_rbbox_map`.
        results (list[dict]): per-class dicts from :func:`eval_rbbox_map`.
        dataset (list[str] | str, optional): class names (default: class indices).
        scale_ranges (list[tuple], optional): the scale ranges, one table each.
        logger (logging.Logger | str, optional): mmengine ``print_log`` target;
            ``'silent'`` prints nothing.
        group_aps (dict, optional): group name -> its mAP (float | list[float], e.g. from
            :func:`mean_ap_of_classes`), printed as ``mAP_{name}`` rows after the mAP row.
    """
    if logger == 'silent' or not results:
        return
    from terminaltables import AsciiTable

    num_scales = len(np.atleast_1d(results[0]['ap']))
    num_classes = len(results)
    if dataset is None or isinstance(dataset, str):
        label_names = [str(i) for i in range(num_classes)]
    else:
        label_names = list(dataset)
    if len(label_names) != num_classes:
        raise ValueError(f'dataset names {num_classes} classes expected, got {len(label_names)}')
    mean_ap = list(np.atleast_1d(mean_ap))
    for s in range(num_scales):
        if scale_ranges is not None:
            print_log(f'Scale range {scale_ranges[s]}', logger=logger)
        table_data = [['class', 'gts', 'dets', 'recall', 'ap']]
        for j, res in enumerate(results):
            recall = np.array(res['recall'], ndmin=2)
            rec = recall[s, -1] if recall.size > 0 else 0.0
            table_data.append(
                [
                    label_names[j],
                    int(np.atleast_1d(res['num_gts'])[s]),
                    res['num_dets'],
                    f'{rec:.3f}',
                    f'{float(np.atleast_1d(res["ap"])[s]):.3f}',
                ]
            )
        table_data.append(['mAP', '', '', '', f'{mean_ap[s]:.3f}'])
        for name, group_ap in (group_aps or {}).items():
            value = float(np.atleast_1d(group_ap)[s])
            table_data.append([f'mAP_{name}', '', '', '', f'{value:.3f}'])
        table = AsciiTable(table_data)
        table.inner_footing_row_border = not group_aps
        lines = table.table.splitlines()
        if group_aps:  # the footing border goes above the mAP row and its group rows
            footer = len(lines) - 2 - len(group_aps)
            lines = lines[:footer] + [lines[2]] + lines[footer:]
        print_log('\n' + '\n'.join(lines), logger=logger)
