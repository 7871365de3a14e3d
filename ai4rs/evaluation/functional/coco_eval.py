"""COCO bbox evaluation through a selectable COCOeval backend, summarised as pycocotools does.

Two backends compute the per-image matching and the accumulated precision/recall arrays:

- ``'pycocotools'``: the reference implementation (cocodataset/cocoapi), pure Python loops;
- ``'faster_coco_eval'``: the ``faster-coco-eval`` package, a drop-in with a C++ core. Its
  ``eval['precision']`` / ``eval['recall']`` arrays are identical to pycocotools' (tested),
  it is several times faster (``tools/analysis_tools/benchmark_coco_eval.py``).

The 12 summary numbers are computed here from those arrays with pycocotools' ``summarize``
rules (faster-coco-eval's own ``stats`` take AP at ``maxDets[-1]`` instead of 100, which
differs from pycocotools once an image holds more than 100 detections), so the result does
not depend on the backend. ``backend='auto'`` picks faster-coco-eval when it is installed.

Array conventions (as pycocotools): ``precision`` is (T, R, K, A, M) and ``recall`` is
(T, K, A, M) for T IoU thresholds, R=101 recall points, K categories, A area ranges
(all, small, medium, large) and M ``maxDets`` values; -1 marks "no ground truth".
"""

import contextlib
import importlib.util
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

COCO_BACKENDS = ('faster_coco_eval', 'pycocotools')

#: pycocotools' area-range labels, in the order of the ``A`` axis
AREA_LABELS = ('all', 'small', 'medium', 'large')

#: mmdet's names of the 12 summary numbers, index into :func:`summarize_coco_stats`
COCO_METRIC_NAMES = {
    'mAP': 0,
    'mAP_50': 1,
    'mAP_75': 2,
    'mAP_s': 3,
    'mAP_m': 4,
    'mAP_l': 5,
    'AR@100': 6,
    'AR@300': 7,
    'AR@1000': 8,
    'AR_s@1000': 9,
    'AR_m@1000': 10,
    'AR_l@1000': 11,
}


def default_iou_thrs() -> np.ndarray:
    """The COCO IoU thresholds 0.50:0.05:0.95 (10,), built exactly as pycocotools does."""
    return np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)


def resolve_backend(backend: str = 'auto') -> str:
    """Name of the COCOeval backend to use.

    Args:
        backend (str): ``'auto'`` (faster-coco-eval if importable, else pycocotools),
            ``'faster_coco_eval'`` or ``'pycocotools'``.

    Raises:
        ValueError: an unknown name.
        ImportError: the named backend is not installed.
    """
    if backend == 'auto':
        if importlib.util.find_spec('faster_coco_eval') is not None:
            return 'faster_coco_eval'
        return 'pycocotools'
    if backend not in COCO_BACKENDS:
        raise ValueError(
            f"COCO eval backend must be 'auto' or one of {COCO_BACKENDS}, got {backend!r}"
        )
    if importlib.util.find_spec(backend) is None:
        pip = 'faster-coco-eval' if backend == 'faster_coco_eval' else backend
        raise ImportError(f'the COCO eval backend {backend!r} is not installed (pip install {pip})')
    return backend


def _api(backend: str):
    """(COCO class, COCOeval class) of a backend."""
    if backend == 'faster_coco_eval':
        from faster_coco_eval import COCO, COCOeval_faster

        return COCO, COCOeval_faster
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    return COCO, COCOeval


def build_coco(dataset: dict | str, backend: str = 'auto'):
    """A ``COCO`` object of the chosen backend from a json path or a loaded dict.

    The backends print progress lines to stdout; they are silenced.
    """
    coco_cls, _ = _api(resolve_backend(backend))
    with contextlib.redirect_stdout(io.StringIO()):
        if isinstance(dataset, dict):
            coco = coco_cls()
            coco.dataset = dataset
            coco.createIndex()
        else:
            coco = coco_cls(str(dataset))
    return coco


def load_results(coco_gt, detections: list[dict]):
    """``coco_gt.loadRes(detections)`` (same backend as ``coco_gt``), stdout silenced.

    Args:
        detections (list[dict]): COCO results, each ``image_id``, ``category_id``,
            ``bbox`` ``[x, y, w, h]`` and ``score``.

    Raises:
        ValueError: ``detections`` is empty (pycocotools cannot load an empty list).
    """
    if not detections:
        raise ValueError('there are no detections to evaluate (the results list is empty)')
    with contextlib.redirect_stdout(io.StringIO()):
        return coco_gt.loadRes(detections)


@dataclass
class CocoEvalResult:
    """Accumulated COCO evaluation.

    Attributes:
        precision (np.ndarray): (T, R, K, A, M) precision, -1 where a category has no GT.
        recall (np.ndarray): (T, K, A, M) recall, -1 where a category has no GT.
        iou_thrs (np.ndarray): (T,) IoU thresholds.
        max_dets (list[int]): the M ``maxDets`` values.
        cat_ids (list[int]): the K category ids, in the order of the K axis.
        stats (np.ndarray): (12,) pycocotools' summary numbers (see
            :func:`summarize_coco_stats`).
    """

    precision: np.ndarray
    recall: np.ndarray
    iou_thrs: np.ndarray
    max_dets: list[int]
    cat_ids: list[int]
    stats: np.ndarray


def evaluate_bbox(
    coco_gt,
    coco_dt,
    cat_ids: Sequence[int] | None = None,
    img_ids: Sequence[int] | None = None,
    max_dets: Sequence[int] = (100, 300, 1000),
    iou_thrs: Sequence[float] | None = None,
) -> CocoEvalResult:
    """Run COCOeval (evaluate + accumulate) for boxes with the backend of ``coco_gt``.

    Args:
        coco_gt: ground truth ``COCO`` object (from :func:`build_coco`).
        coco_dt: detections, from :func:`load_results` on ``coco_gt``.
        cat_ids (list[int], optional): categories to evaluate, in this order; all by default.
        img_ids (list[int], optional): images to evaluate; all images of ``coco_gt`` by default.
        max_dets (list[int]): ``params.maxDets``, at least 3 values (pycocotools' summary
            uses the first and third).
        iou_thrs (list[float], optional): IoU thresholds; 0.50:0.05:0.95 by default.
    """
    if len(max_dets) < 3:
        raise ValueError(f'max_dets needs 3 values (as pycocotools), got {list(max_dets)}')
    module = type(coco_gt).__module__
    backend = 'faster_coco_eval' if module.startswith('faster_coco_eval') else 'pycocotools'
    _, eval_cls = _api(backend)
    iou_thrs = default_iou_thrs() if iou_thrs is None else np.asarray(iou_thrs, dtype=np.float64)
    with contextlib.redirect_stdout(io.StringIO()):
        if backend == 'faster_coco_eval':
            coco_eval = eval_cls(coco_gt, coco_dt, 'bbox', print_function=lambda *a: None)
        else:
            coco_eval = eval_cls(coco_gt, coco_dt, 'bbox')
        params = coco_eval.params
        params.catIds = list(coco_gt.getCatIds() if cat_ids is None else cat_ids)
        params.imgIds = list(coco_gt.getImgIds() if img_ids is None else img_ids)
        params.maxDets = [int(m) for m in max_dets]
        params.iouThrs = iou_thrs
        coco_eval.evaluate()
        coco_eval.accumulate()
    precision = np.asarray(coco_eval.eval['precision'])
    recall = np.asarray(coco_eval.eval['recall'])
    stats = summarize_coco_stats(precision, recall, iou_thrs, params.maxDets)
    return CocoEvalResult(
        precision=precision,
        recall=recall,
        iou_thrs=np.asarray(iou_thrs),
        max_dets=list(params.maxDets),
        cat_ids=list(params.catIds),
        stats=stats,
    )


def _mean_valid(values: np.ndarray) -> float:
    """Mean of the entries > -1; -1 when there is none (pycocotools' convention)."""
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def summarize_one(
    precision: np.ndarray,
    recall: np.ndarray,
    iou_thrs: Sequence[float],
    max_dets: Sequence[int],
    ap: bool = True,
    iou_thr: float | None = None,
    area: str = 'all',
    max_det: int = 100,
) -> float:
    """One summary number, as pycocotools' ``COCOeval._summarize``.

    The IoU threshold and ``max_det`` are looked up by exact equality in ``iou_thrs`` /
    ``max_dets``; if absent the result is -1 (as pycocotools).
    """
    iou_thrs = np.asarray(iou_thrs)
    a = [i for i, lbl in enumerate(AREA_LABELS) if lbl == area]
    m = [i for i, d in enumerate(max_dets) if d == max_det]
    values = precision if ap else recall
    if iou_thr is not None:
        values = values[np.where(iou_thr == iou_thrs)[0]]
    values = values[..., a, :][..., m]
    return _mean_valid(values)


def summarize_coco_stats(
    precision: np.ndarray, recall: np.ndarray, iou_thrs: Sequence[float], max_dets: Sequence[int]
) -> np.ndarray:
    """pycocotools' 12 box summary numbers (``COCOeval.stats``), in its order.

    AP@[.5:.95] at 100 detections; AP50, AP75, AP small/medium/large at ``max_dets[2]``;
    AR at ``max_dets[0]``, ``[1]``, ``[2]``; AR small/medium/large at ``max_dets[2]``.

    Returns:
        np.ndarray: (12,) float64; -1 for a number with nothing to average.
    """
    md = list(max_dets)

    def s(ap, **kw):
        return summarize_one(precision, recall, iou_thrs, md, ap=ap, **kw)

    return np.array(
        [
            s(True),
            s(True, iou_thr=0.5, max_det=md[2]),
            s(True, iou_thr=0.75, max_det=md[2]),
            s(True, area='small', max_det=md[2]),
            s(True, area='medium', max_det=md[2]),
            s(True, area='large', max_det=md[2]),
            s(False, max_det=md[0]),
            s(False, max_det=md[1]),
            s(False, max_det=md[2]),
            s(False, area='small', max_det=md[2]),
            s(False, area='medium', max_det=md[2]),
            s(False, area='large', max_det=md[2]),
        ],
        dtype=np.float64,
    )


def format_coco_summary(
    stats: np.ndarray, iou_thrs: Sequence[float], max_dets: Sequence[int]
) -> str:
    """The 12 summary lines in pycocotools' printed layout."""
    md = list(max_dets)
    rows = [
        (1, None, 'all', 100),
        (1, 0.5, 'all', md[2]),
        (1, 0.75, 'all', md[2]),
        (1, None, 'small', md[2]),
        (1, None, 'medium', md[2]),
        (1, None, 'large', md[2]),
        (0, None, 'all', md[0]),
        (0, None, 'all', md[1]),
        (0, None, 'all', md[2]),
        (0, None, 'small', md[2]),
        (0, None, 'medium', md[2]),
        (0, None, 'large', md[2]),
    ]
    lines = []
    for value, (ap, iou, area, det) in zip(stats, rows):
        title = 'Average Precision' if ap else 'Average Recall'
        kind = '(AP)' if ap else '(AR)'
        iou_str = f'{iou_thrs[0]:0.2f}:{iou_thrs[-1]:0.2f}' if iou is None else f'{iou:0.2f}'
        lines.append(
            f' {title:<18} {kind} @[ IoU={iou_str:<9} | area={area:>6s} | '
            f'maxDets={det:>3d} ] = {value:0.3f}'
        )
    return '\n'.join(lines)


def classwise_ap(precision: np.ndarray, iou_thrs: Sequence[float]) -> np.ndarray:
    """Per-category AP as mmdet's classwise table: (K, 6) = mAP, mAP_50, mAP_75, s, m, l.

    Each is the mean of ``precision`` > -1 over the selected axes at the last ``maxDets``
    (mmdet's choice); NaN where a category has no valid entry. mAP_50 / mAP_75 are the first
    and sixth IoU thresholds (0.5 and 0.75 for the default thresholds, as mmdet indexes them).
    """
    num_iou = precision.shape[0]
    out = np.full((precision.shape[2], 6), np.nan)
    for k in range(precision.shape[2]):
        selections = [precision[:, :, k, 0, -1]]
        selections += [precision[t, :, k, 0, -1] if t < num_iou else np.zeros(0) for t in (0, 5)]
        selections += [precision[:, :, k, a, -1] for a in (1, 2, 3)]
        for j, sel in enumerate(selections):
            valid = sel[sel > -1]
            if valid.size:
                out[k, j] = float(np.mean(valid))
    return out


def classwise_table(names: Sequence[str], values: np.ndarray) -> str:
    """mmdet's classwise AsciiTable text: ``category`` then the 6 APs (3 decimals)."""
    from terminaltables import AsciiTable

    headers = ['category', 'mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l']
    rows = [
        [str(name)] + [f'{round(float(v), 3)}' for v in vals] for name, vals in zip(names, values)
    ]
    table = AsciiTable([headers] + rows)
    table.inner_footing_row_border = False
    return table.table


def xyxy_to_coco_bbox(bboxes: np.ndarray) -> np.ndarray:
    """(N, 4) ``(x1, y1, x2, y2)`` boxes -> (N, 4) COCO ``(x, y, w, h)``."""
    bboxes = np.asarray(bboxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([bboxes[:, :2], bboxes[:, 2:] - bboxes[:, :2]], axis=1)


def detections_to_coco(
    img_ids: Sequence,
    bboxes: Sequence[np.ndarray],
    scores: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    cat_ids: Sequence[int],
) -> list[dict]:
    """COCO results list from per-image arrays.

    Args:
        img_ids: one image id per image.
        bboxes: per image (n, 4) ``(x1, y1, x2, y2)`` boxes.
        scores, labels: per image (n,) scores and contiguous labels (indices into ``cat_ids``).
        cat_ids: category id of each label.

    Returns:
        list[dict]: ``image_id``, ``bbox`` ``[x, y, w, h]``, ``score``, ``category_id``.

    Raises:
        ValueError: a label outside ``range(len(cat_ids))`` (the image id is named).
    """
    cat_ids = [int(c) for c in cat_ids]
    out = []
    for img_id, box, score, label in zip(img_ids, bboxes, scores, labels):
        label = np.asarray(label, dtype=np.int64).reshape(-1)
        if label.size and (label.min() < 0 or label.max() >= len(cat_ids)):
            raise ValueError(
                f'image {img_id!r}: predicted label {int(label.max())} is outside '
                f'the {len(cat_ids)} classes'
            )
        xywh = xyxy_to_coco_bbox(box).tolist()
        for b, s, lab in zip(
            xywh, np.asarray(score, dtype=np.float64).reshape(-1).tolist(), label.tolist()
        ):
            out.append(dict(image_id=img_id, bbox=b, score=s, category_id=cat_ids[lab]))
    return out


__all__ = [
    'COCO_BACKENDS',
    'AREA_LABELS',
    'COCO_METRIC_NAMES',
    'CocoEvalResult',
    'default_iou_thrs',
    'resolve_backend',
    'build_coco',
    'load_results',
    'evaluate_bbox',
    'summarize_one',
    'summarize_coco_stats',
    'format_coco_summary',
    'classwise_ap',
    'classwise_table',
    'xyxy_to_coco_bbox',
    'detections_to_coco',
]
