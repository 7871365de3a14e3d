"""Evaluate a COCO detection results json against a COCO annotation json, offline.

    python tools/analysis_tools/coco_eval.py GT_JSON DET_JSON [--out-json F] [--classwise] \\
        [--backend auto|faster_coco_eval|pycocotools]

``DET_JSON`` is a COCO results list (``[{"image_id", "category_id", "bbox": [x, y, w, h],
"score"}, ...]``), e.g. the ``{outfile_prefix}.bbox.json`` of ``CocoMetric(format_only=True)``.
Every image and category of ``GT_JSON`` is evaluated (maxDets 100/300/1000, as mmdet's
CocoMetric; the numbers equal pycocotools' ``COCOeval``). The tool prints pycocotools'
summary (and with ``--classwise`` the per-category table) and writes to ``--out-json``::

    {"bbox_mAP": ..., "bbox_mAP_50": ..., "bbox_mAP_75": ..., "bbox_mAP_s": ...,
     "bbox_mAP_m": ..., "bbox_mAP_l": ...}

as fractions (-1 where pycocotools reports -1: no ground truth in that area range).
A malformed file, or a detection naming an unknown image or category, is an error naming the
file and the detection's index.
"""

import argparse
import json
import math
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from ai4rs.datasets.coco_json import load_coco_json  # noqa: E402
from ai4rs.datasets.file_checks import read_json_file  # noqa: E402
from ai4rs.evaluation.functional.coco_eval import (  # noqa: E402
    COCO_METRIC_NAMES,
    build_coco,
    classwise_ap,
    classwise_table,
    evaluate_bbox,
    format_coco_summary,
    load_results,
    resolve_backend,
)

ITEMS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')


def load_detections(path: str, img_ids: set, cat_ids: set) -> list[dict]:
    """Read and check a COCO results json (list of detections); errors name file and index."""
    dets = read_json_file(path, 'detection file')
    if not isinstance(dets, list):
        raise ValueError(
            f'{path}: a COCO results file holds a json list of detections '
            f'{{"image_id", "category_id", "bbox", "score"}}; got a '
            f'{type(dets).__name__}'
        )
    if not dets:
        raise ValueError(f'{path}: the results list is empty; there is nothing to evaluate')
    for i, det in enumerate(dets):
        if not isinstance(det, dict):
            raise ValueError(f'{path}: detection {i} is not an object: {det!r}')
        missing = [k for k in ('image_id', 'category_id', 'bbox', 'score') if k not in det]
        if missing:
            raise ValueError(f'{path}: detection {i} has no {missing}')
        if det['image_id'] not in img_ids:
            raise ValueError(
                f'{path}: detection {i} names image_id {det["image_id"]!r}, '
                'which is not an image of the ground truth'
            )
        if det['category_id'] not in cat_ids:
            raise ValueError(
                f'{path}: detection {i} names category_id '
                f'{det["category_id"]!r}, which is not a ground-truth category'
            )
        bbox, score = det['bbox'], det['score']
        if (
            not isinstance(bbox, list)
            or len(bbox) != 4
            or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox)
        ):
            raise ValueError(
                f'{path}: detection {i}: bbox must be 4 finite numbers [x, y, w, h], got {bbox!r}'
            )
        if not isinstance(score, (int, float)) or not math.isfinite(score):
            raise ValueError(f'{path}: detection {i}: score must be a finite number, got {score!r}')
    return dets


def evaluate_files(
    gt_json: str, det_json: str, classwise: bool = False, backend: str = 'auto'
) -> tuple[dict, str]:
    """Evaluate the two files; return (``{'bbox_mAP': ...}``, printable report)."""
    backend = resolve_backend(backend)
    gt = load_coco_json(gt_json)
    dets = load_detections(
        det_json, {img['id'] for img in gt['images']}, {c['id'] for c in gt['categories']}
    )
    coco_gt = build_coco(gt, backend)
    cat_ids = [c['id'] for c in gt['categories']]
    res = evaluate_bbox(coco_gt, load_results(coco_gt, dets), cat_ids=cat_ids)
    report = format_coco_summary(res.stats, res.iou_thrs, res.max_dets)
    if classwise:
        names = [c['name'] for c in gt['categories']]
        report += '\n' + classwise_table(names, classwise_ap(res.precision, res.iou_thrs))
    metrics = {f'bbox_{k}': float(res.stats[COCO_METRIC_NAMES[k]]) for k in ITEMS}
    report += '\nbbox_mAP_copypaste: ' + ' '.join(f'{v:.3f}' for v in metrics.values())
    return metrics, report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('gt_json', help='COCO annotation json')
    parser.add_argument('det_json', help='COCO results json (list of detections)')
    parser.add_argument('--out-json', help='write the six APs (fractions) here')
    parser.add_argument('--classwise', action='store_true', help='print per-category AP')
    parser.add_argument(
        '--backend', default='auto', choices=['auto', 'faster_coco_eval', 'pycocotools']
    )
    args = parser.parse_args(argv)
    try:
        metrics, report = evaluate_files(args.gt_json, args.det_json, args.classwise, args.backend)
    except (FileNotFoundError, ValueError, ImportError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(report)
    if args.out_json:
        with open(args.out_json, 'w') as f:
            json.dump(metrics, f, indent=2)
        print(f'wrote {args.out_json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
