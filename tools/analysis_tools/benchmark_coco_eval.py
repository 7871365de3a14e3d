"""Benchmark CocoMetric against pycocotools' COCOeval on a COCO-val-sized synthetic workload.

5000 images (640x480), 80 classes, about 7 ground-truth boxes per image (some crowd, sizes
spanning small/medium/large) and 100 detections per image (jittered copies of the objects
plus clutter, scores random). In the same run it times

- ``CocoMetric`` (``process`` of all samples + ``compute_metrics``, with its default backend,
  and optionally every backend), and
- the reference: pycocotools ``COCO`` + ``loadRes`` + ``COCOeval`` (evaluate, accumulate,
  summarize) with mmdet's settings (maxDets 100/300/1000),

checks that the six APs are equal (within 1e-12) and prints the times and their ratio::

    python tools/analysis_tools/benchmark_coco_eval.py [--num-images 5000] [--dets-per-image 100]
"""

import argparse
import contextlib
import io
import json
import os.path as osp
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import ai4rs  # noqa: E402,F401,I001  (first: sets the OpenMP wait policy before torch loads)
import torch  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402

from ai4rs.datasets.coco_classes import COCO_CLASSES  # noqa: E402
from ai4rs.evaluation.functional.coco_eval import COCO_BACKENDS, resolve_backend  # noqa: E402
from ai4rs.evaluation.metrics.coco_metric import CocoMetric  # noqa: E402
from ai4rs.structures.bbox import HorizontalBoxes  # noqa: E402

ITEMS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')


def make_workload(
    num_images: int, dets_per_image: int, seed: int = 0, width: int = 640, height: int = 480
):
    """(COCO gt dict, list of per-image predictions dicts with xyxy numpy arrays)."""
    rng = np.random.default_rng(seed)
    categories = [dict(id=i + 1 + (i // 10), name=n) for i, n in enumerate(COCO_CLASSES)]
    cat_ids = np.array([c['id'] for c in categories])
    images, annotations, preds = [], [], []
    for img_id in range(1, num_images + 1):
        images.append(dict(id=img_id, width=width, height=height, file_name=f'{img_id}.jpg'))
        n = int(rng.poisson(7))
        side = np.exp(rng.uniform(np.log(6), np.log(400), size=n))
        wh = np.stack([side * rng.uniform(0.6, 1.4, n), side * rng.uniform(0.6, 1.4, n)], 1)
        wh = np.minimum(wh, [width - 1, height - 1])
        xy = rng.uniform(0, 1, (n, 2)) * ([width, height] - wh)
        labels = rng.integers(0, len(categories), n)
        for k in range(n):
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=img_id,
                    category_id=int(cat_ids[labels[k]]),
                    bbox=[float(v) for v in (*xy[k], *wh[k])],
                    area=float(wh[k, 0] * wh[k, 1]),
                    iscrowd=int(rng.random() < 0.02),
                )
            )
        # detections: 0-3 jittered copies of each object, then random clutter
        boxes, det_labels = [], []
        for k in range(n):
            for _ in range(int(rng.integers(0, 4))):
                jitter = rng.normal(0, 0.05, 4) * np.r_[wh[k], wh[k]]
                x1y1 = xy[k] + jitter[:2]
                boxes.append(np.r_[x1y1, x1y1 + wh[k] + jitter[2:]])
                same = rng.random() < 0.85
                det_labels.append(labels[k] if same else rng.integers(0, len(categories)))
        while len(boxes) < dets_per_image:
            s = np.exp(rng.uniform(np.log(4), np.log(300), 2))
            p = rng.uniform(0, 1, 2) * ([width, height] - s)
            boxes.append(np.r_[p, p + s])
            det_labels.append(rng.integers(0, len(categories)))
        boxes = np.clip(
            np.asarray(boxes[:dets_per_image], dtype=np.float64), 0, [width, height, width, height]
        )
        preds.append(
            dict(
                img_id=img_id,
                bboxes=boxes,
                labels=np.asarray(det_labels[:dets_per_image], dtype=np.int64),
                scores=rng.random(len(boxes)),
            )
        )
    gt = dict(images=images, annotations=annotations, categories=categories)
    return gt, preds


def run_metric(ann_file: str, preds: list, backend: str) -> tuple[dict, float]:
    """CocoMetric's process + compute_metrics time (data samples built before the clock)."""
    samples = [
        dict(
            img_id=p['img_id'],
            ori_shape=(480, 640),
            pred_instances=dict(
                bboxes=HorizontalBoxes(torch.from_numpy(p['bboxes']).float()),
                scores=torch.from_numpy(p['scores']).float(),
                labels=torch.from_numpy(p['labels']),
            ),
        )
        for p in preds
    ]
    start = time.perf_counter()
    metric = CocoMetric(ann_file=ann_file, backend=backend)
    metric.dataset_meta = dict(classes=COCO_CLASSES)
    for i in range(0, len(samples), 32):
        metric.process({}, samples[i : i + 32])
    results = metric.compute_metrics(metric.results)
    return results, time.perf_counter() - start


def run_reference(ann_file: str, preds: list, cat_ids: list) -> tuple[np.ndarray, float]:
    """pycocotools on the same detections (float32-rounded as CocoMetric receives them)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dets = []
    for p in preds:
        b = p['bboxes'].astype(np.float32).astype(np.float64)
        s = p['scores'].astype(np.float32).astype(np.float64)
        for box, score, label in zip(b, s, p['labels']):
            dets.append(
                dict(
                    image_id=p['img_id'],
                    category_id=cat_ids[label],
                    bbox=[box[0], box[1], box[2] - box[0], box[3] - box[1]],
                    score=float(score),
                )
            )
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(ann_file)
        coco_eval = COCOeval(coco, coco.loadRes(dets), 'bbox')
        coco_eval.params.catIds = cat_ids
        coco_eval.params.maxDets = [100, 300, 1000]
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return coco_eval.stats, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--num-images', type=int, default=5000)
    parser.add_argument('--dets-per-image', type=int, default=100)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--all-backends',
        action='store_true',
        help='also time CocoMetric with each installed backend',
    )
    args = parser.parse_args(argv)

    # the metric's summary table would be logged once per backend: keep the output short
    MMLogger.get_instance('benchmark_coco_eval', log_level='WARNING')
    gt, preds = make_workload(args.num_images, args.dets_per_image, args.seed)
    cat_ids = [c['id'] for c in gt['categories']]
    print(
        f'{args.num_images} images, {len(gt["annotations"])} ground-truth boxes, '
        f'{sum(len(p["bboxes"]) for p in preds)} detections, 80 classes'
    )
    with tempfile.TemporaryDirectory() as tmp:
        ann_file = osp.join(tmp, 'gt.json')
        with open(ann_file, 'w') as f:
            json.dump(gt, f)
        backends = ['auto']
        if args.all_backends:
            backends += [b for b in COCO_BACKENDS if _installed(b)]
        timings = {}
        results = {}
        for backend in backends:
            results[backend], timings[backend] = run_metric(ann_file, preds, backend)
        ref_stats, ref_time = run_reference(ann_file, preds, cat_ids)
    ok = True
    for backend in backends:
        got = np.array([results[backend][f'bbox_{k}'] for k in ITEMS])
        diff = float(np.abs(got - ref_stats[:6]).max())
        ok &= diff <= 1e-12
        name = backend if backend != 'auto' else f'auto = {resolve_backend("auto")}'
        print(
            f'CocoMetric ({name}): {timings[backend]:.2f} s, APs '
            f'{" ".join(f"{v:.4f}" for v in got)}, max |diff| vs pycocotools {diff:.1e}'
        )
    print(
        f'pycocotools COCOeval:  {ref_time:.2f} s, APs '
        f'{" ".join(f"{v:.4f}" for v in ref_stats[:6])}'
    )
    print(
        f'speed-up of CocoMetric (default backend) over pycocotools: '
        f'{ref_time / timings["auto"]:.2f}x'
    )
    print('numbers equal: ' + ('yes' if ok else 'NO'))
    return 0 if ok else 1


def _installed(backend: str) -> bool:
    try:
        resolve_backend(backend)
    except ImportError:
        return False
    return True


if __name__ == '__main__':
    sys.exit(main())
