"""What the analysis tools compute from saved predictions with the config's own metric.

- :func:`build_offline_metric`: the config's ``test_evaluator`` (a ``DOTAMetric`` or a
  ``CocoMetric``) set up to compute (not only write files) at a chosen IoU threshold;
- :func:`evaluate_pr_curves`: that metric run on the samples of
  :func:`ai4rs.evaluation.offline.load_offline_results`, its numbers and its per-class
  :class:`~ai4rs.evaluation.functional.PRCurve` objects (``tools/analysis_tools/pr_curves.py``);
- :func:`per_image_ap`: each image's mAP on its own, by the metric's functions
  (``tools/analysis_tools/analyze_results.py``, as mmdet's): DOTA-style mAP for
  ``DOTAMetric`` (the mean over its ``iou_thrs``, as its ``mAP`` key), COCO bbox mAP
  (AP@[.5:.95], ``coco/bbox_mAP``) for ``CocoMetric``;
- :func:`rank_images` and :func:`ranked_file_name`: mmdet's top-k best / worst selection and
  file names (``{name}_{round(ap, 3)}{ext}``).
"""

import contextlib
import copy
import logging
import os.path as osp
from collections.abc import Sequence

import numpy as np
from mmengine.logging import MMLogger

from ai4rs.registry import METRICS

from .functional.coco_eval import evaluate_bbox, load_results
from .functional.mean_ap import eval_matches
from .functional.pr_curve import PRCurve
from .metrics.coco_metric import CocoMetric
from .metrics.dota_metric import DOTAMetric

NO_GROUND_TRUTH = (
    'the evaluated images have no ground truth (a test split without labels?): precision '
    'and recall need labelled images, e.g. --cfg-options test_dataloader=... of the val split'
)


def _metric_cfgs(evaluator) -> list:
    if evaluator is None:
        return []
    if isinstance(evaluator, dict) and 'metrics' in evaluator:  # Evaluator(metrics=[...])
        evaluator = evaluator['metrics']
    return list(evaluator) if isinstance(evaluator, (list, tuple)) else [evaluator]


def build_offline_metric(cfg, dataset_meta: dict, iou_thr: float | None = None):
    """The config's ``test_evaluator`` metric, made to compute the metric offline.

    The first ``DOTAMetric`` / ``CocoMetric`` of ``cfg.test_evaluator`` (``val_evaluator``
    when the test one has none) is built with ``format_only``, ``merge_patches`` and
    ``outfile_prefix`` switched off (no files written) and, for ``DOTAMetric``, without
    ``scale_ranges`` (one curve per class). With ``iou_thr`` the metric evaluates that
    threshold: DOTA: ``iou_thrs=[iou_thr]``; COCO: the configured thresholds when they hold it
    (the summary stays the COCO one), else ``[iou_thr]``.

    Args:
        cfg (Config): the loaded config.
        dataset_meta (dict): the test dataset's metainfo (``classes``).
        iou_thr (float, optional): the IoU threshold of interest.

    Raises:
        ValueError: neither evaluator has a DOTAMetric or CocoMetric.
    """
    for key in ('test_evaluator', 'val_evaluator'):
        for metric_cfg in _metric_cfgs(cfg.get(key)):
            metric_cfg = copy.deepcopy(dict(metric_cfg))
            name = str(metric_cfg.get('type', '')).split('.')[-1]
            if name not in ('DOTAMetric', 'CocoMetric'):
                continue
            metric_cfg['type'] = name
            metric_cfg['format_only'] = False
            metric_cfg['outfile_prefix'] = None
            if name == 'DOTAMetric':
                metric_cfg['merge_patches'] = False
                metric_cfg['scale_ranges'] = None
                if iou_thr is not None:
                    metric_cfg['iou_thrs'] = [float(iou_thr)]
            elif iou_thr is not None:
                metric = METRICS.build(copy.deepcopy(metric_cfg))
                if not np.any(np.abs(metric.iou_thrs - float(iou_thr)) < 1e-9):
                    metric_cfg['iou_thrs'] = [float(iou_thr)]
            metric = METRICS.build(metric_cfg)
            metric.dataset_meta = dataset_meta
            return metric
    raise ValueError(
        f'{getattr(cfg, "filename", "the config")}: test_evaluator / val_evaluator has no '
        'DOTAMetric or CocoMetric to compute precision and recall with'
    )


def evaluate_pr_curves(
    metric, samples: Sequence[dict], iou_thr: float = 0.5
) -> tuple[dict, list[PRCurve]]:
    """Run ``metric`` on the samples; its numbers and its per-class curves at ``iou_thr``.

    Args:
        metric (DOTAMetric | CocoMetric): from :func:`build_offline_metric` (``dataset_meta``
            set).
        samples (list[dict]): ``pred_instances`` and ground truth per image
            (:func:`ai4rs.evaluation.offline.load_offline_results`' samples).
        iou_thr (float): the threshold of the curves; one the metric evaluates.

    Returns:
        tuple: the metric's result dict (``dota/...`` or ``coco/...`` keys) and one
        :class:`PRCurve` per class.

    Raises:
        ValueError: the metric did not evaluate ``iou_thr``, or no class has ground truth.
    """
    metric.results.clear()
    metric.process({}, list(samples))
    values = metric.evaluate(len(samples))
    for thr, curves in metric.pr_curves.items():
        if abs(thr - float(iou_thr)) < 1e-9:
            if all(c.num_gts == 0 or np.isnan(c.ap) for c in curves):
                raise ValueError(NO_GROUND_TRUTH)
            return values, curves
    raise ValueError(
        f'the metric evaluated IoU thresholds {sorted(metric.pr_curves)}, not {iou_thr} '
        '(or it computed nothing: no detection at all)'
    )


@contextlib.contextmanager
def _quiet_logger():
    """Silence the current MMLogger's info lines (one summary table per image otherwise)."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def per_image_ap(metric, samples: Sequence[dict]) -> np.ndarray:
    """Each image's mAP computed on that image alone, with the metric's own functions.

    ``DOTAMetric``: the mean over its ``iou_thrs`` of the image's mAP (its matching ``mode``,
    ``eval_mode``; ``'mmrotate'`` mode averages the classes the image has ground truth of, so
    an image without ground truth scores 0.0) -- what ``metric.compute_metrics`` gives as
    ``mAP`` for the image alone. ``CocoMetric``: COCOeval restricted to the image
    (``img_ids=[id]``), AP@[.5:.95] at 100 detections (``bbox_mAP``); -1 for an image without
    ground truth (pycocotools' convention), 0.0 for one with ground truth and no detection.

    Args:
        metric (DOTAMetric | CocoMetric): with ``dataset_meta`` set.
        samples (list[dict]): as :func:`evaluate_pr_curves`.

    Returns:
        np.ndarray: (N,) float64, in the order of ``samples``.

    Raises:
        ValueError: no image has ground truth (nothing to rank).
    """
    metric.results.clear()
    metric.process({}, list(samples))
    results = list(metric.results)
    metric.results.clear()
    if isinstance(metric, DOTAMetric):
        num_classes = len(metric._classes())
        gts = [r['gt'] for r in results if r['gt'] is not None]
        if not any(len(gt['labels']) + len(gt['labels_ignore']) for gt in gts):
            raise ValueError(NO_GROUND_TRUTH)
        aps = []
        for res in results:
            matches = metric.match_results([res], num_classes)
            per_thr = [eval_matches(matches, t, metric.use_07_metric)[0] for t in metric.iou_thrs]
            aps.append(float(np.mean(per_thr)))
        return np.asarray(aps, dtype=np.float64)
    if not isinstance(metric, CocoMetric):
        raise TypeError(f'per_image_ap needs a DOTAMetric or CocoMetric, got {type(metric)}')
    with _quiet_logger():
        coco, _, _, detections = metric.prepare_coco(results)
    if not coco.getAnnIds(imgIds=[pred['img_id'] for _, pred in results]):
        raise ValueError(NO_GROUND_TRUTH)
    coco_dt = load_results(coco, detections) if detections else None
    aps = []
    for _, pred in results:
        img_id = pred['img_id']
        has_gt = bool(coco.getAnnIds(imgIds=[img_id], iscrowd=False))
        if coco_dt is None:
            aps.append(0.0 if has_gt else -1.0)
            continue
        res = evaluate_bbox(
            coco,
            coco_dt,
            cat_ids=metric.cat_ids,
            img_ids=[img_id],
            max_dets=metric.proposal_nums,
            iou_thrs=metric.iou_thrs,
        )
        aps.append(float(res.stats[0]))
    return np.asarray(aps, dtype=np.float64)


def rank_images(aps: Sequence[float], topk: int) -> tuple[list[int], list[int]]:
    """mmdet's selection: sort the images by AP (ascending, stable); the best ``topk`` are the
    last ones (returned best first), the worst ``topk`` the first ones (worst first).

    Returns:
        tuple[list[int], list[int]]: indices of the good and of the bad images.
    """
    if topk < 1:
        raise ValueError(f'topk must be a positive number of images, got {topk}')
    order = np.argsort(np.asarray(aps, dtype=np.float64), kind='stable')
    good = [int(i) for i in order[::-1][:topk]]
    bad = [int(i) for i in order[:topk]]
    return good, bad


def ranked_file_name(img_path: str, ap: float) -> str:
    """The drawn image's file name, as mmdet's: ``{stem}_{round(ap, 3)}{ext}``."""
    stem, ext = osp.splitext(osp.basename(str(img_path)))
    return f'{stem}_{round(float(ap), 3)}{ext or ".png"}'


__all__ = [
    'build_offline_metric',
    'evaluate_pr_curves',
    'per_image_ap',
    'rank_images',
    'ranked_file_name',
]
