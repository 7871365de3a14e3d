"""Precision-recall curves per class, taken from the arrays the metrics compute their AP from.

A :class:`PRCurve` holds one class's curve and the AP the metric reports for it; the AP is
the area of that very curve by the metric's own rule (:func:`curve_ap`):

- ``'11points'`` / ``'area'``: DOTA (VOC-style) AP, :func:`ai4rs.evaluation.functional.
  average_precision` of the per-detection recall / precision that
  :func:`ai4rs.evaluation.functional.eval_matches` returns (detections in score order);
- ``'coco101'``: COCO AP at one IoU threshold: the mean of COCOeval's interpolated precision
  at the 101 recall points 0, 0.01, ..., 1 (``eval['precision'][t, :, k, area 'all',
  last maxDets]``, as mmdet's classwise table), the recall axis being :data:`COCO_RECALL_THRS`.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .mean_ap import average_precision

#: COCOeval's ``params.recThrs``: 0:0.01:1, built exactly as pycocotools does
COCO_RECALL_THRS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)

AP_RULES = ('11points', 'area', 'coco101')


@dataclass
class PRCurve:
    """One class's precision-recall curve and its AP.

    Attributes:
        name (str): the class name.
        recall (np.ndarray): (N,) float64 recall of each curve point.
        precision (np.ndarray): (N,) float64 precision, same points.
        ap (float): the metric's AP of the class; ``curve_ap(recall, precision, rule)``.
            NaN for a COCO class without ground truth (its precision is -1, no curve).
        rule (str): how ``ap`` is the area of the curve, one of :data:`AP_RULES`.
        num_gts (int): ground truths of the class (DOTA: non-ignored; COCO: -1, unknown).
    """

    name: str
    recall: np.ndarray
    precision: np.ndarray
    ap: float
    rule: str
    num_gts: int = -1


def curve_ap(recall: np.ndarray, precision: np.ndarray, rule: str) -> float:
    """The AP of a precision-recall curve by a metric's rule.

    Args:
        recall (np.ndarray): (N,) recalls (DOTA: of the detections in score order; COCO:
            :data:`COCO_RECALL_THRS`).
        precision (np.ndarray): (N,) precisions; COCO marks "no ground truth" with -1.
        rule (str): ``'11points'`` (VOC07), ``'area'`` (VOC area) or ``'coco101'`` (mean of
            the precisions > -1; NaN when there is none).

    Returns:
        float
    """
    if rule not in AP_RULES:
        raise ValueError(f'rule must be one of {AP_RULES}, got {rule!r}')
    recall = np.asarray(recall, dtype=np.float64).reshape(-1)
    precision = np.asarray(precision, dtype=np.float64).reshape(-1)
    if recall.shape != precision.shape:
        raise ValueError(
            f'recall and precision differ in length: {recall.size} vs {precision.size}'
        )
    if rule == 'coco101':
        valid = precision[precision > -1]
        return float(valid.mean()) if valid.size else float('nan')
    return float(average_precision(recall, precision, rule))


def dota_pr_curves(
    eval_results: Sequence[dict], classes: Sequence[str], use_07_metric: bool = True
) -> list[PRCurve]:
    """One curve per class from :func:`ai4rs.evaluation.functional.eval_matches`' per-class
    results (without ``scale_ranges``).

    Args:
        eval_results (list[dict]): per class ``recall``, ``precision`` (K,) in score order,
            ``ap``, ``num_gts``.
        classes (list[str]): the class names, one per result.
        use_07_metric (bool): the rule the AP was computed with (11 points or area).

    Returns:
        list[PRCurve]: ``ap`` is the result's own ``ap`` (the metric's value).
    """
    if len(classes) != len(eval_results):
        raise ValueError(f'{len(classes)} class names for {len(eval_results)} per-class results')
    rule = '11points' if use_07_metric else 'area'
    curves = []
    for name, res in zip(classes, eval_results):
        if np.ndim(res['ap']) > 0:
            raise ValueError(
                'dota_pr_curves: results evaluated with scale_ranges have no one curve'
            )
        curves.append(
            PRCurve(
                name=str(name),
                recall=np.asarray(res['recall'], dtype=np.float64),
                precision=np.asarray(res['precision'], dtype=np.float64),
                ap=float(res['ap']),
                rule=rule,
                num_gts=int(res['num_gts']),
            )
        )
    return curves


def coco_iou_index(iou_thrs: Sequence[float], iou_thr: float) -> int:
    """Index of ``iou_thr`` in the evaluated IoU thresholds (to 1e-9).

    Raises:
        ValueError: the threshold was not evaluated (the evaluated ones are named).
    """
    iou_thrs = np.asarray(iou_thrs, dtype=np.float64).reshape(-1)
    hit = np.nonzero(np.abs(iou_thrs - float(iou_thr)) < 1e-9)[0]
    if not hit.size:
        raise ValueError(
            f'IoU threshold {iou_thr} was not evaluated; the evaluated ones are '
            f'{[round(float(t), 4) for t in iou_thrs]}'
        )
    return int(hit[0])


def coco_pr_curves(
    precision: np.ndarray, iou_thrs: Sequence[float], names: Sequence[str], iou_thr: float = 0.5
) -> list[PRCurve]:
    """One curve per category from COCOeval's accumulated precision at one IoU threshold.

    Args:
        precision (np.ndarray): (T, R, K, A, M) ``eval['precision']`` (R = 101 recall points).
        iou_thrs (list[float]): the T evaluated IoU thresholds.
        names (list[str]): the K category names.
        iou_thr (float): the threshold to draw; must be one of ``iou_thrs``.

    Returns:
        list[PRCurve]: recall :data:`COCO_RECALL_THRS`, precision ``precision[t, :, k, 0, -1]``
        (area 'all', last maxDets: the AP of mmdet's classwise ``mAP_50`` column for 0.5),
        ``ap`` their mean by :func:`curve_ap`.
    """
    precision = np.asarray(precision, dtype=np.float64)
    if precision.ndim != 5 or precision.shape[1] != len(COCO_RECALL_THRS):
        raise ValueError(
            f'precision must be (T, {len(COCO_RECALL_THRS)}, K, A, M), got {precision.shape}'
        )
    if len(names) != precision.shape[2]:
        raise ValueError(f'{len(names)} category names for {precision.shape[2]} categories')
    t = coco_iou_index(iou_thrs, iou_thr)
    curves = []
    for k, name in enumerate(names):
        prec = precision[t, :, k, 0, -1].copy()
        curves.append(
            PRCurve(
                name=str(name),
                recall=COCO_RECALL_THRS.copy(),
                precision=prec,
                ap=curve_ap(COCO_RECALL_THRS, prec, 'coco101'),
                rule='coco101',
            )
        )
    return curves


__all__ = [
    'AP_RULES',
    'COCO_RECALL_THRS',
    'PRCurve',
    'curve_ap',
    'dota_pr_curves',
    'coco_iou_index',
    'coco_pr_curves',
]
