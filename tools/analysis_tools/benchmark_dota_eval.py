"""Benchmark DOTA evaluation on a DOTA-val-sized synthetic workload.

458 images, 15 classes, about 29k ground-truth objects (some images dense, as DOTA's harbours
and parking lots) and about 200k detections (jittered copies of the objects plus clutter, as a
detector's low-score tail). It times ``eval_rbbox_map`` in 'devkit' mode (exact polygon IoU)
and in 'mmrotate' mode (``ai4rs.ops.box_iou_rotated``), and, in the same run, a straightforward
shapely implementation of the devkit's algorithm (``dota_evaluation_task1.py`` with shapely
polygons in place of its compiled ``polyiou``: per detection, an axis-aligned prefilter and the
polygon IoU of the kept ground truths). It checks that both give the same per-class AP and
prints the times and their ratio::

    python tools/analysis_tools/benchmark_dota_eval.py [--num-dets 200000] [--no-reference]
"""

import argparse
import time

import numpy as np

from ai4rs.evaluation.functional import boxes_to_polygons, eval_rbbox_map


def make_workload(
    num_images: int = 458, num_classes: int = 15, num_dets: int = 200000, seed: int = 0
) -> dict:
    """Synthetic ground truth and detections, as rboxes and as their corner polygons.

    Returns:
        dict: ``rbox_dets`` / ``qbox_dets`` (per image, per class (k, 6) / (k, 9)),
        ``rbox_anns`` / ``qbox_anns`` (per image dicts with ``bboxes``, ``labels``,
        ``bboxes_ignore``, ``labels_ignore``; about 5% of the objects are difficult).
    """
    rng = np.random.default_rng(seed)
    # objects per image: heavy-tailed around DOTA-val's 63 per image
    counts = np.minimum(rng.lognormal(3.6, 1.0, num_images).astype(int) + 1, 2000)
    det_share = counts / counts.sum()
    out = dict(rbox_dets=[], qbox_dets=[], rbox_anns=[], qbox_anns=[])
    for i in range(num_images):
        n = counts[i]
        size = 4000.0 if i % 4 == 0 else 1500.0
        gt = np.stack(
            [
                rng.uniform(0, size, n),
                rng.uniform(0, size, n),
                rng.uniform(12, 80, n),
                rng.uniform(6, 40, n),
                rng.uniform(-np.pi / 2, np.pi / 2, n),
            ],
            axis=1,
        )
        gt_labels = rng.integers(0, num_classes, n)
        difficult = rng.uniform(size=n) < 0.05
        # detections: ~60% jittered copies of objects (several per object), ~40% clutter
        m = max(int(round(num_dets * det_share[i])), 1)
        m_hit = int(m * 0.6)
        src = rng.integers(0, n, m_hit)
        hit = gt[src] + np.concatenate(
            [
                rng.normal(0, 3, (m_hit, 2)),
                rng.normal(0, 4, (m_hit, 2)),
                rng.normal(0, 0.1, (m_hit, 1)),
            ],
            axis=1,
        )
        hit[:, 2:4] = np.abs(hit[:, 2:4]) + 1
        clutter = np.stack(
            [
                rng.uniform(0, size, m - m_hit),
                rng.uniform(0, size, m - m_hit),
                rng.uniform(12, 80, m - m_hit),
                rng.uniform(6, 40, m - m_hit),
                rng.uniform(-np.pi / 2, np.pi / 2, m - m_hit),
            ],
            axis=1,
        )
        det = np.concatenate([hit, clutter])
        det_labels = np.concatenate(
            [
                np.where(
                    rng.uniform(size=m_hit) < 0.9,
                    gt_labels[src],
                    rng.integers(0, num_classes, m_hit),
                ),
                rng.integers(0, num_classes, m - m_hit),
            ]
        )
        scores = np.concatenate([rng.beta(5, 2, m_hit), rng.beta(1, 6, m - m_hit)])
        det_q = boxes_to_polygons(det, 'rbox')
        gt_q = boxes_to_polygons(gt, 'rbox')
        for key, boxes, gboxes in (('rbox', det, gt), ('qbox', det_q, gt_q)):
            out[f'{key}_dets'].append(
                [
                    np.concatenate([boxes[det_labels == c], scores[det_labels == c, None]], axis=1)
                    for c in range(num_classes)
                ]
            )
            out[f'{key}_anns'].append(
                dict(
                    bboxes=gboxes[~difficult],
                    labels=gt_labels[~difficult],
                    bboxes_ignore=gboxes[difficult],
                    labels_ignore=gt_labels[difficult],
                )
            )
    return out


def _voc07_ap(rec, prec):
    ap = 0.0
    for t in np.arange(0.0, 1.1, 0.1):
        ap += (np.max(prec[rec >= t]) if np.sum(rec >= t) else 0.0) / 11.0
    return ap


def shapely_devkit_map(
    det_results, annotations, num_classes: int, iou_thr: float = 0.5
) -> list[float]:
    """The devkit's ``voc_eval`` loop per class with shapely polygon IoU (the reference).

    Args:
        det_results: per image, per class (k, 9) ``qbox + score`` arrays.
        annotations: per image dicts (qboxes; ignored = difficult).

    Returns:
        list[float]: AP per class (VOC07 11 points; 0 for a class without ground truth).
    """
    import shapely

    aps = []
    for c in range(num_classes):
        recs, npos = [], 0
        for ann in annotations:
            boxes = np.concatenate(
                [ann['bboxes'][ann['labels'] == c], ann['bboxes_ignore'][ann['labels_ignore'] == c]]
            )
            difficult = np.concatenate(
                [
                    np.zeros((ann['labels'] == c).sum(), bool),
                    np.ones((ann['labels_ignore'] == c).sum(), bool),
                ]
            )
            npos += int((~difficult).sum())
            recs.append(
                dict(
                    bbox=boxes,
                    difficult=difficult,
                    det=np.zeros(len(boxes), bool),
                    polys=shapely.polygons(boxes.reshape(-1, 4, 2)),
                )
            )
        rows = [(i, d) for i, per_cls in enumerate(det_results) for d in per_cls[c]]
        if not rows:
            aps.append(0.0)
            continue
        image_ids = np.array([r[0] for r in rows])
        dets = np.array([r[1] for r in rows])
        order = np.argsort(-dets[:, 8], kind='stable')
        tp = np.zeros(len(order))
        fp = np.zeros(len(order))
        for d, k in enumerate(order):
            rec = recs[image_ids[k]]
            bb = dets[k, :8]
            ovmax, jmax = -np.inf, -1
            gt = rec['bbox']
            if len(gt):
                ixmin = np.maximum(gt[:, 0::2].min(1), bb[0::2].min())
                iymin = np.maximum(gt[:, 1::2].min(1), bb[1::2].min())
                ixmax = np.minimum(gt[:, 0::2].max(1), bb[0::2].max())
                iymax = np.minimum(gt[:, 1::2].max(1), bb[1::2].max())
                keep = np.nonzero((ixmax > ixmin) & (iymax > iymin))[0]
                if len(keep):
                    det_poly = shapely.polygons(bb.reshape(4, 2))
                    gpolys = rec['polys'][keep]
                    inter = shapely.area(shapely.intersection(gpolys, det_poly))
                    ious = inter / (shapely.area(gpolys) + det_poly.area - inter)
                    ovmax, jmax = ious.max(), keep[ious.argmax()]
            if ovmax > iou_thr:
                if not rec['difficult'][jmax]:
                    if not rec['det'][jmax]:
                        tp[d] = 1
                        rec['det'][jmax] = True
                    else:
                        fp[d] = 1
            else:
                fp[d] = 1
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        recall = tp / max(npos, np.finfo(np.float32).eps)
        precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        aps.append(_voc07_ap(recall, precision) if npos else 0.0)
    return aps


def benchmark_dota_eval(
    num_images: int = 458,
    num_classes: int = 15,
    num_dets: int = 200000,
    seed: int = 0,
    reference: bool = True,
) -> dict[str, float]:
    """Time ai4rs's DOTA evaluation (and the shapely reference) on the synthetic workload.

    Returns:
        dict: ``num_dets``, ``num_gts``, ``ai4rs_devkit_s``, ``ai4rs_mmrotate_s``,
        ``map_devkit``, ``map_mmrotate`` and, with ``reference``, ``shapely_devkit_s``,
        ``speedup`` (reference time / ai4rs devkit time) and ``max_ap_diff``.
    """
    w = make_workload(num_images, num_classes, num_dets, seed)
    stats = dict(
        num_dets=float(sum(len(d) for img in w['qbox_dets'] for d in img)),
        num_gts=float(sum(len(a['labels']) + len(a['labels_ignore']) for a in w['qbox_anns'])),
    )
    t = time.perf_counter()
    map_dk, res_dk = eval_rbbox_map(
        w['qbox_dets'], w['qbox_anns'], box_type='qbox', mode='devkit', logger='silent'
    )
    stats['ai4rs_devkit_s'] = time.perf_counter() - t
    stats['map_devkit'] = map_dk
    t = time.perf_counter()
    map_mm, _ = eval_rbbox_map(
        w['rbox_dets'], w['rbox_anns'], box_type='rbox', mode='mmrotate', logger='silent'
    )
    stats['ai4rs_mmrotate_s'] = time.perf_counter() - t
    stats['map_mmrotate'] = map_mm
    if reference:
        t = time.perf_counter()
        ref = shapely_devkit_map(w['qbox_dets'], w['qbox_anns'], num_classes)
        stats['shapely_devkit_s'] = time.perf_counter() - t
        stats['speedup'] = stats['shapely_devkit_s'] / stats['ai4rs_devkit_s']
        stats['max_ap_diff'] = float(
            np.max(np.abs(np.array(ref) - np.array([r['ap'] for r in res_dk])))
        )
    return stats


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num-images', type=int, default=458)
    parser.add_argument('--num-classes', type=int, default=15)
    parser.add_argument('--num-dets', type=int, default=200000)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--no-reference', action='store_true', help='skip the (slow) shapely reference'
    )
    args = parser.parse_args(argv)
    s = benchmark_dota_eval(
        args.num_images, args.num_classes, args.num_dets, args.seed, not args.no_reference
    )
    print(
        f'workload: {args.num_images} images, {args.num_classes} classes, '
        f'{int(s["num_gts"])} objects, {int(s["num_dets"])} detections'
    )
    print(
        f'ai4rs eval_rbbox_map devkit mode  : {s["ai4rs_devkit_s"]:8.2f} s  '
        f'(mAP {s["map_devkit"]:.4f})'
    )
    print(
        f'ai4rs eval_rbbox_map mmrotate mode: {s["ai4rs_mmrotate_s"]:8.2f} s  '
        f'(mAP {s["map_mmrotate"]:.4f})'
    )
    if 'shapely_devkit_s' in s:
        print(f'shapely devkit loop (reference)   : {s["shapely_devkit_s"]:8.2f} s')
        print(
            f'speedup (reference / ai4rs devkit): {s["speedup"]:8.1f}x  '
            f'(max per-class AP difference {s["max_ap_diff"]:.2e})'
        )


if __name__ == '__main__':
    main()
